"""redun: ``@task`` functions, results and call graph recorded in a SQLite database.

A root task returns the list of ``add`` expressions (the chain threads each
result into the next call; the fan-out is independent calls). The scheduler's
local executor runs tasks on 2 threads; its cache is the database under DIR.
"""

from __future__ import annotations

import sys

from _common import finish, parse_args
from redun import Scheduler, task
from redun.config import Config

redun_namespace = "e3_bench"

EXECUTED = []


@task()
def add(v: int, i: int) -> int:
    EXECUTED.append(1)
    return v + i


@task()
def chain(n: int) -> int:
    v = 0
    for _ in range(n):
        v = add(v, 1)
    return v


@task()
def fanout(n: int) -> list[int]:
    return [add(0, i) for i in range(n)]


def main() -> None:
    shape, n, directory = parse_args()
    # redun records the chain task's returned expression, nested N calls deep, by
    # pickling it recursively.
    sys.setrecursionlimit(max(1000, 20 * n))
    config = Config(
        {
            "backend": {"db_uri": f"sqlite:///{directory / 'redun.db'}"},
            "executors.default": {"type": "local", "max_workers": "2"},
        }
    )
    scheduler = Scheduler(config=config)
    scheduler.load()
    if shape == "chain":
        finish(shape, n, [scheduler.run(chain(n))], len(EXECUTED), last_only=True)
    else:
        finish(shape, n, scheduler.run(fanout(n)), len(EXECUTED))


if __name__ == "__main__":
    main()
