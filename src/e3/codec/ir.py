"""East function IR: from authored functions to stored bytes, and commands back to argv.

Authoring side (the SDK): an ``East.function`` artifact's IR is normalised
with east-c's ``normalize_ir`` (variables and labels renamed canonically,
source locations stripped), so a cosmetic rename of a parameter does not
change the ``function_ir`` hash while any change to the body does.

Command side (the engine): a task's command is itself an East function
``(input_paths: Array<String>, output_path: String) -> Array<String>``; it is
compiled once per command hash and evaluated to get the argv to run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from east import East
from east.runtime._compiler_eastc import normalize_ir
from east.runtime.compiler import compile_from_beast2

from e3.codec import beast2
from e3.codec.types import ArrayType, EastType, IRType, StringType
from e3.errors import InvalidPackage, RunnerError

#: East type of a command function's parameters and result.
PATHS_TYPE = ArrayType(StringType)

#: Platform packages e3 knows how to pass to ``east-py run -p``, by import name.
KNOWN_PLATFORM_PACKAGES: tuple[tuple[str, str], ...] = (
    ("east_py_std", "east-py-std"),
    ("east_py_io", "east-py-io"),
    ("east_py_datascience", "east-py-datascience"),
)


@dataclass(frozen=True)
class Signature:
    """Parameter types, output type and asyncness of an East function."""

    params: tuple[EastType, ...]
    output: EastType
    is_async: bool


def is_east_function(obj: object) -> bool:
    """Whether ``obj`` is an ``East.function`` / ``East.asyncFunction`` artifact."""
    return hasattr(obj, "_east_ir") and hasattr(obj, "_east_param_types")


def signature_of(fn: Any) -> Signature:
    """The signature of an authored East function."""
    if not is_east_function(fn):
        raise InvalidPackage(f"{fn!r} is not an East function (build it with East.function)")
    return Signature(tuple(fn._east_param_types), fn._east_out_type, bool(fn._east_is_async))


def function_ir_bytes(fn: Any) -> bytes:
    """Canonical Beast2 of the normalised IR of an authored function."""
    ir = normalize_ir(fn._east_ir)
    return beast2.encode(ir, IRType)


def platform_names(fn: Any) -> list[str]:
    """Platform functions an authored function calls, in first-use order."""
    return [str(d["name"]) for d in East.platform_dependencies(fn)]


@lru_cache(maxsize=1)
def installed_platforms() -> dict[str, str]:
    """Platform function name → the ``-p`` package that provides it (installed ones only)."""
    found: dict[str, str] = {}
    for module_name, package in KNOWN_PLATFORM_PACKAGES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for entry in getattr(module, "platform", []):
            found.setdefault(str(entry["name"]), package)
    return found


def providers_for(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(packages, missing)``: the ``-p`` packages providing ``names``, and names none provides."""
    table = installed_platforms()
    packages: list[str] = []
    missing: list[str] = []
    for n in names:
        pkg = table.get(n)
        if pkg is None:
            missing.append(n)
        elif pkg not in packages:
            packages.append(pkg)
    return packages, missing


def east_runner_command(prefix: Sequence[str]) -> bytes:
    """IR of ``(ins, out) -> [*prefix, -i ins[1], …, -o out, ins[0]]``.

    ``ins[0]`` is the function-IR file; the other inputs are the function's
    arguments, in order.
    """
    return _east_runner_command(tuple(prefix))


@lru_cache(maxsize=64)
def _east_runner_command(prefix: tuple[str, ...]) -> bytes:
    fixed = list(prefix)

    def body(b: Any, ins: Any, out: Any) -> Any:
        rest = ins.slice(1, ins.size())
        flags = rest.flat_map(lambda b2, p, i: East.new_array(StringType, ["-i", p]))
        head = East.value(fixed, PATHS_TYPE)
        return head.concat(flags).concat(East.new_array(StringType, ["-o", out, ins.get(0)]))

    fn = East.function([PATHS_TYPE, StringType], PATHS_TYPE, body)
    return function_ir_bytes(fn)


def shell_command_from_function(user_fn: Any, shell: Sequence[str] = ("bash", "-c")) -> bytes:
    """IR of ``(ins, out) -> [*shell, user_fn(ins, out)]`` for a user's command function."""
    sig = signature_of(user_fn)
    if (
        len(sig.params) != 2
        or sig.params[0] != PATHS_TYPE
        or sig.params[1] != StringType
        or sig.output != StringType
    ):
        raise InvalidPackage(
            "a custom task's command must be an East function "
            "(input_paths: Array<String>, output_path: String) -> String"
        )
    fixed = list(shell)

    def body(b: Any, ins: Any, out: Any) -> Any:
        return East.value(fixed, PATHS_TYPE).concat(East.new_array(StringType, [user_fn(ins, out)]))

    return function_ir_bytes(East.function([PATHS_TYPE, StringType], PATHS_TYPE, body))


def shell_command_from_template(
    parts: Sequence[tuple[str, int | None]], shell: Sequence[str] = ("bash", "-c")
) -> bytes:
    """IR of a command string built from literal text and quoted paths.

    ``parts`` alternates literals and placeholders: ``(text, None)`` is literal
    text, ``("", i)`` the i-th input path and ``("", -1)`` the output path.
    Paths are single-quoted for the shell, so spaces and quotes in them are safe.
    """
    return _shell_command_from_template(tuple(parts), tuple(shell))


@lru_cache(maxsize=256)
def _shell_command_from_template(
    parts: tuple[tuple[str, int | None], ...], shell: tuple[str, ...]
) -> bytes:
    fixed = list(shell)

    def quoted(expr: Any) -> Any:
        inner = expr.replace("'", "'\\''")
        return East.value("'", StringType).concat(inner).concat("'")

    def body(b: Any, ins: Any, out: Any) -> Any:
        acc = East.value("", StringType)
        for text, index in parts:
            if index is None:
                acc = acc.concat(text)
            elif index < 0:
                acc = acc.concat(quoted(out))
            else:
                acc = acc.concat(quoted(ins.get(index)))
        return East.value(fixed, PATHS_TYPE).concat(East.new_array(StringType, [acc]))

    return function_ir_bytes(East.function([PATHS_TYPE, StringType], PATHS_TYPE, body))


@lru_cache(maxsize=256)
def _compiled_command(ir_bytes: bytes) -> Callable[..., Any]:
    return compile_from_beast2(ir_bytes, [])  # type: ignore[no-any-return]


def evaluate_command(ir_bytes: bytes, input_paths: Sequence[str], output_path: str) -> list[str]:
    """Evaluate a task's command IR into the argv to execute.

    Raises:
        RunnerError: the IR does not compile or its evaluation fails.
    """
    try:
        fn = _compiled_command(ir_bytes)
        argv = [str(a) for a in fn(list(input_paths), output_path)]
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunnerError(f"command IR failed: {first}") from exc
    if not argv:
        raise RunnerError("command IR produced an empty argv")
    return argv
