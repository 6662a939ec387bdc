"""Hamilton: one function per task in a generated module, the driver's cache.

Hamilton builds its DAG from a module's functions, so the driver writes one
(``t0 … t{N-1}``, each taking its input by parameter name) into DIR and imports
it; a code change invalidates a node because Hamilton hashes each function's
source. ``with_cache`` stores metadata (SQLite) and pickled results under DIR.
Execution is Hamilton's default: sequential, in this process.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from _common import finish, parse_args
from hamilton import driver


def module_source(shape: str, n: int) -> str:
    lines = []
    for i in range(n):
        if shape == "chain":
            arg, body = ("x" if i == 0 else f"t{i - 1}"), "1"
        else:
            arg, body = "x", str(i)
        lines.append(f"def t{i}({arg}: int) -> int:\n    return {arg} + {body}\n")
    return "\n\n".join(lines)


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    shape, n, directory = parse_args()
    path = directory / f"hamilton_{shape}{n}.py"
    source = module_source(shape, n)
    if not path.exists() or path.read_text() != source:
        path.write_text(source)
    dr = (
        driver.Builder()
        .with_modules(load(path))
        .with_cache(path=directory / "hamilton_cache")
        .build()
    )
    names = [f"t{i}" for i in range(n)]
    out = dr.execute(names, inputs={"x": 0})
    logs = dr.cache.logs(run_id=dr.cache.last_run_id, level="info")
    executed = sum(
        1 for events in logs.values() for e in events if e.event_type.value == "execute_node"
    )
    finish(shape, n, [out[name] for name in names], executed)


if __name__ == "__main__":
    main()
