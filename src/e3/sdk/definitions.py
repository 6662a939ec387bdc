"""Package definitions in Python: inputs, tasks, custom (shell) tasks.

These are plain immutable descriptions, checked as they are built so that a
mistake is reported at the line that makes it: a task's inputs must be
datasets or tasks, as many as the function has parameters, each of the
parameter's type. Nothing here touches a repository.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from e3.base.names import check_field_name, check_task_name
from e3.base.paths import DatasetPath, format_keypath
from e3.codec import beast2
from e3.codec import ir as east_ir
from e3.codec.types import EastType, IRType, fits, print_type
from e3.errors import E3Error, InvalidName, InvalidPackage, TypeMismatch


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: Marker for "this input has no initial value" (``None`` is the value of Null inputs).
NO_DEFAULT: Any = _NoDefault()


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset of a package: a path in the dataset tree with an East type.

    ``default`` holds canonical Beast2 of the initial value, if any; ``task``
    is the task that writes the dataset, if any.
    """

    path: DatasetPath
    type: EastType
    writable: bool
    default: bytes | None = None
    task: Task | None = field(default=None, repr=False)

    @property
    def keypath(self) -> str:
        """``.inputs.x``."""
        return format_keypath(self.path)


@dataclass(frozen=True, eq=False)
class Task:
    """A task: a command over input datasets writing one output dataset.

    For ``e3.task`` the first input is the task's own ``function_ir`` dataset,
    as in the reference layout, and the command runs the function with
    east-py; for ``e3.custom_task`` the command is a shell command.
    """

    name: str
    inputs: tuple[Dataset, ...]
    output: Dataset
    command_ir: bytes
    function_ir: Dataset | None = None

    @property
    def datasets(self) -> tuple[Dataset, ...]:
        """Datasets this task defines (its output, and its function IR for East tasks)."""
        own = (self.output,) if self.function_ir is None else (self.function_ir, self.output)
        return own


Item = Dataset | Task

#: Runner argv used when a task sets none: east-py's runner; ``-p`` flags are added
#: for the platform packages the function's IR calls.
DEFAULT_RUNNER: tuple[str, ...] = ("east-py", "run")


def _check(fn: Callable[[str], str], value: str, what: str) -> str:
    try:
        return fn(value)
    except InvalidName as exc:
        raise InvalidPackage(f"{what}: {exc.message}") from exc


def input(name: str, type: EastType, default: Any = NO_DEFAULT) -> Dataset:
    """Declare a writable input dataset ``.inputs.<name>``, optionally with an initial value.

    Raises:
        InvalidPackage: bad name, or a default that is not a value of ``type``.
    """
    _check(check_field_name, name, f"input {name!r}")
    initial: bytes | None = None
    if default is not NO_DEFAULT:
        try:
            initial = beast2.encode(default, type)
        except TypeMismatch as exc:
            raise InvalidPackage(
                f"input {name!r}: default value does not fit {print_type(type)} ({exc.message})"
            ) from exc
    return Dataset(("inputs", name), type, True, initial)


def _as_dataset(item: object, task: str, index: int) -> Dataset:
    if isinstance(item, Task):
        return item.output
    if isinstance(item, Dataset):
        return item
    raise InvalidPackage(
        f"task {task!r}: input {index} is {type(item).__name__}, expected a dataset "
        "(e3.input) or a task (its output)"
    )


def task(name: str, inputs: Sequence[Item], fn: Any, runner: Sequence[str] | None = None) -> Task:
    """Declare a task running an East function on ``inputs``.

    Creates ``.tasks.<name>.function_ir`` (the function's normalised IR) and
    ``.tasks.<name>.output`` (the function's output type).

    Args:
        name: task name (unique in the package).
        inputs: datasets or tasks, one per function parameter, in order.
        fn: an ``East.function`` or ``East.asyncFunction``.
        runner: argv prefix running an IR file with east-py (default
            ``east-py run`` plus ``-p <package>`` for each platform package the
            function calls).

    Raises:
        InvalidPackage: naming the task and parameter at fault.
    """
    _check(check_task_name, name, f"task {name!r}")
    if not east_ir.is_east_function(fn):
        raise InvalidPackage(
            f"task {name!r}: fn must be an East function (East.function), got {type(fn).__name__}"
        )
    sig = east_ir.signature_of(fn)
    ins = tuple(_as_dataset(x, name, i) for i, x in enumerate(inputs))
    if len(ins) != len(sig.params):
        raise InvalidPackage(
            f"task {name!r}: the function takes {len(sig.params)} "
            f"parameter(s) but {len(ins)} input(s) were given"
        )
    for i, (ds, param) in enumerate(zip(ins, sig.params, strict=True)):
        if not fits(ds.type, param):
            raise InvalidPackage(
                f"task {name!r}: parameter {i} expects {print_type(param)} but input "
                f"{ds.keypath} is {print_type(ds.type)}"
            )
    if runner is None:
        packages, missing = east_ir.providers_for(east_ir.platform_names(fn))
        if missing:
            raise InvalidPackage(
                f"task {name!r}: calls platform function(s) {', '.join(missing)} that no "
                "installed platform package provides; pass runner=[...] with the -p flags"
            )
        prefix = [*DEFAULT_RUNNER, *(a for p in packages for a in ("-p", p))]
    else:
        prefix = [str(a) for a in runner]
        if not prefix:
            raise InvalidPackage(f"task {name!r}: runner must not be empty")
    try:
        ir_bytes = east_ir.function_ir_bytes(fn)
    except E3Error:
        raise
    except Exception as exc:
        raise InvalidPackage(f"task {name!r}: cannot serialise the function's IR ({exc})") from exc
    fir = Dataset(("tasks", name, "function_ir"), IRType, False, ir_bytes)
    t: Task
    output = Dataset(("tasks", name, "output"), sig.output, False)
    t = Task(name, (fir, *ins), output, east_ir.east_runner_command(prefix), fir)
    object.__setattr__(output, "task", t)
    object.__setattr__(fir, "task", None)
    return t


_PLACEHOLDER_RE = re.compile(r"\{\{|\}\}|\{(inputs\[(\d+)\]|output)\}|\{[^}]*\}?")


def parse_template(template: str, n_inputs: int, task_name: str) -> list[tuple[str, int | None]]:
    """Split ``"cp {inputs[0]} {output}"`` into literal and placeholder parts."""
    parts: list[tuple[str, int | None]] = []
    pos = 0
    for m in _PLACEHOLDER_RE.finditer(template):
        if m.start() > pos:
            parts.append((template[pos : m.start()], None))
        token = m.group(0)
        if token in ("{{", "}}"):
            parts.append((token[0], None))
        elif m.group(1) == "output":
            parts.append(("", -1))
        elif m.group(2) is not None:
            idx = int(m.group(2))
            if idx >= n_inputs:
                raise InvalidPackage(
                    f"task {task_name!r}: command uses {{inputs[{idx}]}} but "
                    f"the task has {n_inputs} input(s)"
                )
            parts.append(("", idx))
        else:
            raise InvalidPackage(
                f"task {task_name!r}: unknown placeholder {token!r} in command "
                "(use {inputs[N]}, {output}, or {{ }} for braces)"
            )
        pos = m.end()
    if pos < len(template):
        parts.append((template[pos:], None))
    return parts


def custom_task(name: str, inputs: Sequence[Item], output_type: EastType, command: Any) -> Task:
    """Declare a shell-command task writing ``.tasks.<name>.output``.

    ``command`` is either an East function ``(input_paths: Array<String>,
    output_path: String) -> String`` returning the shell command, or a Python
    string with ``{inputs[N]}`` and ``{output}`` placeholders (paths are
    inserted single-quoted). The command runs with ``bash -c``; it reads its
    inputs as Beast2 files and must write its output as Beast2 (any byte form).
    A task whose output type is ``NullType`` may write nothing: it is run for
    its side effects and its output is null.
    """
    _check(check_task_name, name, f"task {name!r}")
    ins = tuple(_as_dataset(x, name, i) for i, x in enumerate(inputs))
    if isinstance(command, str):
        ir_bytes = east_ir.shell_command_from_template(parse_template(command, len(ins), name))
    elif east_ir.is_east_function(command):
        try:
            ir_bytes = east_ir.shell_command_from_function(command)
        except InvalidPackage as exc:
            raise InvalidPackage(f"task {name!r}: {exc.message}") from exc
    else:
        raise InvalidPackage(
            f"task {name!r}: command must be a string template or an East "
            f"function, got {type(command).__name__}"
        )
    output = Dataset(("tasks", name, "output"), output_type, False)
    t = Task(name, ins, output, ir_bytes, None)
    object.__setattr__(output, "task", t)
    return t
