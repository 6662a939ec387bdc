"""The task graph of a deployed workspace, built once per package.

Packages are immutable and named by their hash, so a graph built for one is
valid for as long as the process lives, in any repository: a server running
many runs of one package builds it once.
"""

from __future__ import annotations

from e3.core import tasks
from e3.core.workspaces import Deployed
from e3.dataflow.graph import Graph, build_graph
from e3.store.repository import RepoStore

_CACHE_SIZE = 64
_graphs: dict[str, Graph] = {}


def load_graph(repo: RepoStore, dep: Deployed) -> Graph:
    """The task graph of the package deployed in ``dep``."""
    key = dep.state.package_hash
    graph = _graphs.get(key)
    if graph is None:
        graph = build_graph(tasks.package_tasks(repo, key, dep.package.tasks))
        if len(_graphs) >= _CACHE_SIZE:
            _graphs.clear()
        _graphs[key] = graph
    return graph
