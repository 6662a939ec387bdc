"""The task graph of a package: who reads what, who writes what, in which order.

Task B depends on task A when one of B's inputs is A's output. The graph is
built once per run from the package's task objects; cycles are reported with
the tasks that form them. Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from e3.base.graphs import toposort
from e3.base.paths import DatasetPath
from e3.errors import InvalidPackage, TaskNotFound
from e3.records.task import TaskObject


@dataclass(frozen=True)
class TaskNode:
    """One task of the graph. ``deps`` are indices of the tasks producing its inputs."""

    index: int
    name: str
    hash: str
    command_ir: str
    inputs: tuple[DatasetPath, ...]
    output: DatasetPath
    deps: tuple[int, ...]


@dataclass(frozen=True)
class Graph:
    """Tasks in topological order, with lookup tables."""

    tasks: tuple[TaskNode, ...]
    by_name: dict[str, int]
    producer: dict[DatasetPath, int]
    readers: dict[DatasetPath, tuple[int, ...]]
    dependents: tuple[tuple[int, ...], ...]
    roots: tuple[DatasetPath, ...]

    def upstream(self, indices: Iterable[int]) -> set[int]:
        """The given tasks and every task they (transitively) depend on."""
        seen: set[int] = set()
        stack = list(indices)
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            stack.extend(self.tasks[i].deps)
        return seen

    def downstream(self, indices: Iterable[int]) -> set[int]:
        """Every task that (transitively) depends on the given ones (themselves excluded)."""
        seen: set[int] = set()
        stack = [d for i in indices for d in self.dependents[i]]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            stack.extend(self.dependents[i])
        return seen

    def select(self, patterns: Iterable[str]) -> set[int]:
        """Tasks matching any name or glob pattern, plus everything upstream of them.

        Raises:
            TaskNotFound: a pattern matches no task.
        """
        chosen: set[int] = set()
        for pattern in patterns:
            matched = [i for name, i in self.by_name.items() if fnmatch.fnmatchcase(name, pattern)]
            if not matched:
                raise TaskNotFound(f"no task matches {pattern!r}", task=pattern)
            chosen.update(matched)
        return self.upstream(chosen)


def build_graph(tasks: Mapping[str, tuple[str, TaskObject]]) -> Graph:
    """Build the graph from ``name -> (task hash, task object)``.

    Raises:
        InvalidPackage: two tasks write one dataset, or the tasks form a cycle.
    """
    names = sorted(tasks)
    producer_name: dict[DatasetPath, str] = {}
    for name in names:
        out = tasks[name][1].output
        other = producer_name.get(out)
        if other is not None:
            raise InvalidPackage(f"tasks {other!r} and {name!r} both write the same dataset")
        producer_name[out] = name
    edges = {
        n: sorted({producer_name[p] for p in tasks[n][1].inputs if p in producer_name})
        for n in names
    }
    order, cycle = toposort(names, edges)
    if cycle:
        raise InvalidPackage(f"tasks form a cycle: {' -> '.join(cycle)}")
    index = {n: i for i, n in enumerate(order)}
    nodes = []
    for i, n in enumerate(order):
        h, obj = tasks[n]
        nodes.append(
            TaskNode(
                i,
                n,
                h,
                obj.command_ir,
                obj.inputs,
                obj.output,
                tuple(sorted(index[d] for d in edges[n])),
            )
        )
    dependents: list[list[int]] = [[] for _ in nodes]
    for node in nodes:
        for d in node.deps:
            dependents[d].append(node.index)
    readers: dict[DatasetPath, list[int]] = {}
    for node in nodes:
        for p in dict.fromkeys(node.inputs):
            readers.setdefault(p, []).append(node.index)
    producer = {p: index[n] for p, n in producer_name.items()}
    roots = tuple(sorted(p for p in readers if p not in producer))
    return Graph(
        tasks=tuple(nodes),
        by_name={n.name: n.index for n in nodes},
        producer=producer,
        readers={p: tuple(v) for p, v in readers.items()},
        dependents=tuple(tuple(d) for d in dependents),
        roots=roots,
    )
