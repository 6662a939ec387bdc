"""Prefect: a flow of tasks with a cross-run cache (inputs and task source).

``persist_result=True`` with the ``INPUTS + TASK_SOURCE`` cache policy keeps each
task's result under PREFECT_HOME (set to DIR by the harness) and reuses it in
later runs. With no PREFECT_API_URL the flow talks to Prefect's ephemeral
server, a subprocess with its SQLite database in PREFECT_HOME, which records
every flow and task run. The chain calls each task in turn; the fan-out
submits every task to a thread pool of 2 workers.
"""

from __future__ import annotations

from _common import finish, parse_args
from prefect import flow, task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.task_runners import ThreadPoolTaskRunner

EXECUTED = []


@task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True)
def add(v: int, i: int) -> int:
    EXECUTED.append(1)
    return v + i


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def dataflow(shape: str, n: int) -> list[int]:
    if shape == "chain":
        results, v = [], 0
        for _ in range(n):
            v = add(v, 1)
            results.append(v)
        return results
    futures = [add.submit(0, i) for i in range(n)]
    return [f.result() for f in futures]


def main() -> None:
    shape, n, _ = parse_args()
    finish(shape, n, dataflow(shape, n), len(EXECUTED))


if __name__ == "__main__":
    main()
