"""Dask: a ``dask.delayed`` graph, no cache across runs.

``threads`` (the default scheduler for delayed objects, 2 workers) runs tasks in
this process; ``distributed`` starts a ``LocalCluster`` of 2 worker processes of
one thread each (no dashboard) and runs the graph there.
"""

from __future__ import annotations

import sys

import dask
from _common import finish, parse_args

EXECUTED = []


def add(v: int, i: int) -> int:
    EXECUTED.append(1)
    return v + i


def graph(shape: str, n: int) -> list[object]:
    node = dask.delayed(add, pure=True)
    if shape == "chain":
        nodes, v = [], 0
        for _ in range(n):
            v = node(v, 1)
            nodes.append(v)
        return nodes
    return [node(0, i) for i in range(n)]


def main() -> None:
    mode = sys.argv.pop(4) if len(sys.argv) > 4 else "threads"
    shape, n, _ = parse_args()
    nodes = graph(shape, n)
    if mode == "threads":
        results = dask.compute(*nodes, scheduler="threads", num_workers=2)
    else:
        from dask.distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            results = client.gather(client.compute(nodes))
    # Worker processes of the distributed scheduler cannot be counted from here.
    finish(shape, n, list(results), len(EXECUTED) if mode == "threads" else None)


if __name__ == "__main__":
    main()
