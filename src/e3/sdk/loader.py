"""Find package definitions in a Python file or module, for ``e3 package build``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from e3.errors import InvalidPackage, UsageError
from e3.sdk.package import Package


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
        try:
            module_spec.loader.exec_module(module)
        finally:
            sys.path.pop(0)
    else:
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise UsageError(f"cannot import module {spec!r}: {exc}") from exc
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
