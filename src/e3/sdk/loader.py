"""Find package definitions in a Python file or module, for ``e3 package build``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, TracebackType

from e3.errors import E3Error, InvalidPackage, PackageSourceError, UsageError
from e3.sdk.package import Package

#: Frames in these directories are e3's, east-py's or Python's own, not the user's.
_NOT_USER = tuple(
    os.path.join(os.path.realpath(p), "")
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).parents[1])}
)


def _user_frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    frames = traceback.extract_tb(tb)
    return [
        f
        for f in frames
        if not f.filename.startswith("<") and not os.path.realpath(f.filename).startswith(_NOT_USER)
    ]


def user_sources() -> list[str]:
    """Files of the user's own modules loaded so far (not e3's, east-py's or Python's).

    ``e3 watch`` watches them: a package file's edits and those of the local
    modules it imports both make a new version.
    """
    found = set()
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if not name or not name.endswith(".py"):
            continue
        real = os.path.realpath(name)
        if not real.startswith(_NOT_USER):
            found.add(real)
    return sorted(found)


def run_user_code(fn: Callable[[], ModuleType], label: str) -> ModuleType:
    """Run the user's package code; its failures become one-line errors naming file and line.

    A mistake in the file (a syntax error, a name error, an East expression
    error, an invalid task) is the user's, so it is reported as such
    (:class:`~e3.errors.PackageSourceError`, exit 5), never as an e3 bug.
    """
    try:
        return fn()
    except SyntaxError as exc:
        where = f"{exc.filename or label}:{exc.lineno or '?'}"
        raise PackageSourceError(
            f"{where}: SyntaxError: {exc.msg}",
            traceback="".join(traceback.format_exception_only(exc)),
        ) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        frames = _user_frames(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else label
        text = "".join(traceback.format_list(frames)) + "".join(
            traceback.format_exception_only(exc)
        )
        if isinstance(exc, E3Error):
            raise type(exc)(
                f"{where}: {exc.message}", **{**exc.details, "traceback": text}
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PackageSourceError(
            f"{where}: {type(exc).__name__}: {first}"[:1000], traceback=text
        ) from None


def load_packages(target: str) -> dict[str, Package]:
    """Packages defined at module level in ``target``.

    ``target`` is a ``.py`` file path or an importable module name, optionally
    followed by ``:variable`` to pick one package.
    """
    spec, _, attr = target.partition(":")
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"no such file: {spec}")
        mod_name = f"_e3_build_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise UsageError(f"cannot load {spec} as Python")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        sys.path.insert(0, str(path.resolve().parent))
        loader = module_spec.loader

        def load() -> ModuleType:
            loader.exec_module(module)
            return module

        try:
            run_user_code(load, spec)
        finally:
            sys.path.pop(0)
    else:
        if importlib.util.find_spec(spec.split(".")[0]) is None:
            raise UsageError(f"cannot import module {spec!r}: no such module")
        module = run_user_code(lambda: importlib.import_module(spec), spec)
    if attr:
        value = getattr(module, attr, None)
        if not isinstance(value, Package):
            raise UsageError(f"{spec} has no package named {attr!r}")
        return {attr: value}
    found = {k: v for k, v in vars(module).items() if isinstance(v, Package)}
    if not found:
        raise InvalidPackage(f"{spec} defines no package (assign e3.package(...) to a variable)")
    return found


def load_one(target: str) -> Package:
    """The single package in ``target`` (or the one named after ``:``)."""
    found = load_packages(target)
    unique = {id(p): p for p in found.values()}
    if len(unique) > 1:
        names = ", ".join(sorted(found))
        raise UsageError(
            f"{target} defines several packages ({names}); pick one with "
            f"{target.partition(':')[0]}:<name>"
        )
    return next(iter(unique.values()))
