"""e3: a durable, content-addressed dataflow engine for East programs.

Running dataflows (see :mod:`e3.api`)::

    repo = e3.open("path/to/repo")          # or "http://host:3000/repos/name"
    run = repo.start("ws")
    for event in run.events():
        print(event.kind, event.task)
    print(run.wait().status)

Authoring packages (see :mod:`e3.sdk`): ``e3.input``, ``e3.task``,
``e3.custom_task``, ``e3.package``, ``e3.export``.

Data files (see :mod:`e3.codec.formats`): ``e3.type_from_file(path)`` gives the
East type of a sample file's data (CSV, Parquet, Arrow…), to declare an input
with; ``e3.beast2_from_file(path, type, null_strings=["NA"])`` gives the Beast2
bytes ``repo.dataset_set`` takes.

Every name is loaded on first use from the module the table ``_EXPORTS`` names;
exposing another name is one line there.

This body must stay free of imports and calls. The ``e3`` console script enters through
:mod:`e3.launcher`, and Python runs this file first: until the launcher has installed its
SIGINT handler, a Ctrl-C ends the process with a traceback through whatever is running.
Here that is nothing but the binding of a few constants and functions, which change
nothing (docs/reliability.md, "Ctrl-C at start-up").
"""

#: Public name → the module that defines it.
_EXPORTS = {
    "open": "e3.api.open",
    "Repository": "e3.model.protocol",
    "Run": "e3.model.protocol",
    "RunOutcome": "e3.model.runs",
    "StartOptions": "e3.model.runs",
    "GcPolicy": "e3.model.retention",
    "Event": "e3.model.events",
    "Engine": "e3.api.engine",
    "E3Error": "e3.errors",
    "input": "e3.sdk",
    "task": "e3.sdk",
    "custom_task": "e3.sdk",
    "package": "e3.sdk",
    "export": "e3.sdk",
    "type_from_file": "e3.codec.formats",
    "beast2_from_file": "e3.codec.formats",
}

__all__ = [*_EXPORTS]  # unpacking, not sorted() or list(): no call runs here (see above)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a few ms)
if TYPE_CHECKING:
    from typing import Any


def __getattr__(name: str) -> "Any":
    """Import the module that defines ``name`` and keep the value (once per name)."""
    from importlib import import_module

    module = _EXPORTS.get(name)
    if module is None:
        if name == "sdk":
            return import_module("e3.sdk")
        raise AttributeError(f"module 'e3' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, including the ones not loaded yet."""
    return sorted({*globals(), *_EXPORTS})
