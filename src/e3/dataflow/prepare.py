"""Preparing a run: the locks, the graph, the filters, and its ``running`` record.

Everything that would refuse a run (a lock held, an unknown task) happens here,
before the run exists: a run that is returned has been accepted and will run.
"""

from __future__ import annotations

from dataclasses import dataclass

from e3.base.names import new_uuid7
from e3.base.paths import DatasetPath, format_keypath
from e3.core import runs, workspaces
from e3.dataflow.graph import Graph
from e3.dataflow.loader import load_graph
from e3.model.runs import StartOptions
from e3.records import structure
from e3.records._util import utc_now
from e3.records.dataflow import DataflowRun
from e3.store import locks
from e3.store.locks import HeldLock
from e3.store.repository import RepoStore


@dataclass
class PreparedRun:
    """A run that holds its locks and has its ``running`` record, ready to execute."""

    repo: RepoStore
    ws: str
    options: StartOptions
    run_id: str
    dep: workspaces.Deployed
    graph: Graph
    selected: set[int] | None
    roots: dict[DatasetPath, str | None]
    record: DataflowRun
    held: list[HeldLock]

    def release(self) -> None:
        """Release the run's locks (idempotent)."""
        for lock in reversed(self.held):
            lock.release()


def read_roots(
    dep: workspaces.Deployed, paths: tuple[DatasetPath, ...]
) -> dict[DatasetPath, str | None]:
    """The current value hash of each root input (``None``: not set).

    A root no user may set (a task's function IR; no task writes a root) holds
    what the package gave it: deployment is the only writer of such a dataset,
    and it wrote the package's ref. So its hash is taken from the package, not
    read from its file: that is every other file a fully cached run would read
    (one function IR per task).
    """
    tree = dep.package.structure
    out: dict[DatasetPath, str | None] = {}
    for p in paths:  # roots: no task writes them
        ref = workspaces.current_ref(dep, p, structure.find(tree, p), ())
        out[p] = ref.hash if ref.kind == "value" else None
    return out


def prepare_run(repo: RepoStore, ws: str, options: StartOptions) -> PreparedRun:
    """Lock the workspace (shared) and its dataflow (exclusive), check, and record a new run.

    Runs whose engine died are closed as ``interrupted`` first: while this lock
    is held no other run can be going on.

    Raises:
        WorkspaceNotFound, WorkspaceNotDeployed: nothing to run.
        LockConflict: another dataflow runs on the workspace, or it is being deployed.
        TaskNotFound: a filter matches no task.
    """
    held = [workspaces.lock_workspace(repo, ws, "shared", "dataflow")]
    try:
        held.append(
            locks.acquire(
                repo.dataflow_lock_path(ws),
                "exclusive",
                operation="dataflow",
                label=f"dataflow of workspace '{ws}'",
            )
        )
        dep = workspaces.open_deployed(repo, ws)
        graph = load_graph(repo, dep)
        selected = graph.select(options.filters) if options.filters else None
        runs.close_interrupted_runs(repo, ws)
        roots = read_roots(dep, graph.roots)
        run_id = new_uuid7()
        record = DataflowRun(
            run_id,
            ws,
            f"{dep.state.package_name}@{dep.state.package_version}",
            utc_now(),
            "running",
            input_versions={format_keypath(p): h for p, h in roots.items() if h},
        )
        runs.write_run(repo, record)
    except BaseException:
        for lock in reversed(held):
            lock.release()
        raise
    return PreparedRun(repo, ws, options, run_id, dep, graph, selected, roots, record, held)
