"""What every peer driver shares: its command line and the check of its result.

A driver is run as ``python <driver>.py SHAPE N DIR`` by the peer's own
interpreter. ``SHAPE`` is ``chain`` (task i adds one to task i-1's result,
starting from x = 0) or ``fanout`` (task i computes x + i from x = 0), so the
expected results are the same as e3's ``examples/fanout.py`` packages. ``DIR``
is the peer's cache or database directory: fresh for a first run, reused for a
cached run. The driver prints one JSON line: the tasks whose bodies ran in this
process (``null`` where they ran in other processes and cannot be counted).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def parse_args() -> tuple[str, int, Path]:
    """``SHAPE N DIR`` from the command line."""
    shape, n, directory = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    if shape not in ("chain", "fanout"):
        raise SystemExit(f"unknown shape {shape!r}")
    directory.mkdir(parents=True, exist_ok=True)
    return shape, n, directory


def expected(shape: str, n: int) -> list[int]:
    """Every task's result, in task order."""
    return list(range(1, n + 1)) if shape == "chain" else list(range(n))


def finish(
    shape: str, n: int, results: list[int], executed: int | None, *, last_only: bool = False
) -> None:
    """Check the results and print the report line (exit 1 on a wrong result).

    ``last_only``: ``results`` is the last task's result alone.
    """
    want = expected(shape, n)[-1:] if last_only else expected(shape, n)
    if list(results) != want:
        raise SystemExit(f"wrong results for {shape} {n}: {list(results)[:5]}…")
    print(json.dumps({"executed": executed}))
