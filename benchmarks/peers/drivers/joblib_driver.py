"""joblib: ``Memory.cache`` on the task function; no DAG, no run records.

The chain is a plain loop of cached calls; the fan-out is ``Parallel(n_jobs=2)``
(loky worker processes) of cached calls. Results are pickled under DIR.
"""

from __future__ import annotations

from _common import finish, parse_args
from joblib import Memory, Parallel, delayed

EXECUTED = []


def add(v: int, i: int) -> int:
    EXECUTED.append(1)
    return v + i


def main() -> None:
    shape, n, directory = parse_args()
    cached_add = Memory(directory / "joblib", verbose=0).cache(add)
    if shape == "chain":
        results, v = [], 0
        for _ in range(n):
            v = cached_add(v, 1)
            results.append(v)
    else:
        results = Parallel(n_jobs=2)(delayed(cached_add)(0, i) for i in range(n))
    # The fan-out's tasks run in worker processes, where this process cannot count them.
    finish(shape, n, results, len(EXECUTED) if shape == "chain" else None)


if __name__ == "__main__":
    main()
