"""Ordering tasks by their dependencies: one topological sort, one cycle finder.

Package validation (at import) and the dataflow graph (at run time) both need
them; both report a cycle the same way, with the task names that form it.
Iterative, so a chain of any length cannot exhaust the interpreter's stack.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


def toposort(
    names: Sequence[str], edges: Mapping[str, Sequence[str]]
) -> tuple[list[str], list[str]]:
    """Kahn's algorithm over ``edges`` (name → the names it depends on), ties broken by name.

    Returns ``(order, cycle)``: ``cycle`` is empty when every name could be
    ordered, else one cycle among the rest, closed (first == last) and in
    data-flow order (a task before the tasks that read its output).
    """
    indegree = {n: len(edges[n]) for n in names}
    users: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        for d in edges[n]:
            users[d].append(n)
    heap = [n for n in names if indegree[n] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        n = heapq.heappop(heap)
        order.append(n)
        for u in users[n]:
            indegree[u] -= 1
            if indegree[u] == 0:
                heapq.heappush(heap, u)
    if len(order) == len(names):
        return order, []
    return order, _cycle(names, edges, set(order))


def _cycle(names: Sequence[str], edges: Mapping[str, Sequence[str]], done: set[str]) -> list[str]:
    """One cycle among the names not ordered: every one of them has an unordered dependency."""
    start = min(n for n in names if n not in done)
    path: list[str] = []
    seen: dict[str, int] = {}
    n = start
    while n not in seen:
        seen[n] = len(path)
        path.append(n)
        n = min(d for d in edges[n] if d not in done)
    cyc = path[seen[n] :]
    cyc.reverse()  # edges point to dependencies; report in data-flow order
    return [*cyc, cyc[0]]
