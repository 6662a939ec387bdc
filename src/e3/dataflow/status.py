"""``e3 workspace status``: what a run would do now, without running anything.

For each task, in dependency order, from the workspace's current refs and the
execution cache:

* ``up-to-date`` — the cache holds a result for the current inputs and the output
  dataset already has it;
* ``ready`` — all inputs are there; the task would run (or be restored from the cache);
* ``waiting`` — an input is not set, or an upstream task is not up to date;
* ``in-progress`` — an execution for the current inputs is running (its process is alive);
* ``stale-running`` — an execution is recorded as running but its process is gone;
* ``failed`` / ``error`` — the latest attempt on the current inputs failed.

A task output is ``stale`` when its task is not up to date, ``unset`` when it
has no value, and ``up-to-date`` otherwise.
"""

from __future__ import annotations

from collections.abc import Collection

from e3.base.paths import DatasetPath, format_keypath
from e3.core import executions, tasks, workspaces
from e3.dataflow.graph import Graph, TaskNode
from e3.dataflow.loader import load_graph
from e3.errors import TaskNotFound
from e3.model.results import DatasetState, TaskInfo, TaskStatus, WorkspaceStatus
from e3.records import structure
from e3.records.dataset_ref import DatasetRef
from e3.store import locks
from e3.store.repository import RepoStore


def workspace_status(
    repo: RepoStore, ws: str, tasks: Collection[str] | None = None
) -> WorkspaceStatus:
    """Compute the status (reads only; safe while a dataflow runs).

    ``tasks``: only these tasks, the tasks they depend on (a task's state
    depends on theirs) and the datasets all of those read or write (none or an
    empty list: the whole workspace). The web view's panel of one task asked
    for the whole status of a 10,000-task workspace (1.2 s) to show one task
    and its few datasets.

    Raises:
        TaskNotFound: a name in ``tasks`` is not a task of the workspace.
    """
    dep = workspaces.open_deployed(repo, ws)
    graph = load_graph(repo, dep)
    holders = [
        h.describe()
        for h in locks.holders_of([repo.workspace_lock_path(ws), repo.dataflow_lock_path(ws)])
    ]
    if not tasks:  # None, or no names (which a query string cannot tell from none)
        nodes = list(graph.tasks)
        refs = workspaces.read_all_refs(dep, produced=graph.producer)
        paths = [path for path, _spec in structure.leaves(dep.package.structure)]
    else:
        nodes = [graph.tasks[i] for i in sorted(graph.upstream(_indices(graph, tasks)))]
        paths = list(dict.fromkeys(p for n in nodes for p in (*n.inputs, n.output)))
        refs = workspaces.read_refs(dep, paths, produced=graph.producer)
    states: dict[int, TaskStatus] = {}
    for node in nodes:  # dependency order: a task's upstream states are known before it
        states[node.index] = _task_state(repo, graph, node, refs, states)
    datasets: list[DatasetState] = []
    for path in paths:
        ref = refs.get(path)
        producer = graph.producer.get(path)
        if ref is None or ref.kind == "unassigned":
            datasets.append(DatasetState(path, "unset"))
        elif producer is not None and states[producer].state != "up-to-date":
            datasets.append(DatasetState(path, "stale"))
        else:
            datasets.append(DatasetState(path, "up-to-date"))
    package = f"{dep.state.package_name}@{dep.state.package_version}"
    return WorkspaceStatus(ws, package, holders, [states[n.index] for n in nodes], datasets)


def _indices(graph: Graph, names: Collection[str]) -> list[int]:
    """The tasks named (exactly: no patterns)."""
    unknown = next((n for n in names if n not in graph.by_name), None)
    if unknown is not None:
        raise TaskNotFound(f"no task '{unknown[:200]}' in the workspace", task=unknown[:200])
    return [graph.by_name[n] for n in names]


def _task_state(
    repo: RepoStore,
    graph: Graph,
    node: TaskNode,
    refs: dict[DatasetPath, DatasetRef],
    states: dict[int, TaskStatus],
) -> TaskStatus:
    """One task's state, given the states of the tasks before it (see the module docstring)."""
    deps = tuple(graph.tasks[d].name for d in node.deps)
    unset = next(
        (
            p
            for p in node.inputs
            if p not in graph.producer and (refs.get(p) is None or refs[p].kind != "value")
        ),
        None,
    )
    if unset is not None:
        return TaskStatus(node.name, "waiting", f"input {format_keypath(unset)} is not set", deps)
    behind = [graph.tasks[d].name for d in node.deps if states[d].state != "up-to-date"]
    if behind:
        return TaskStatus(node.name, "waiting", f"waiting for task(s): {', '.join(behind)}", deps)
    ih = tasks.current_inputs_hash(refs, node.inputs)
    if ih is None:  # an upstream output is unset although its task is up to date
        return TaskStatus(node.name, "ready", "", deps)
    latest, cached = executions.latest_and_cached(repo, node.hash, ih)
    st = latest.status if latest is not None else None
    if st is not None and st.state == "running":
        if executions.is_live(st):
            return TaskStatus(
                node.name, "in-progress", "", deps, pid=st.pid, execution_id=st.execution_id
            )
        if cached is None:
            return TaskStatus(
                node.name,
                "stale-running",
                f"PID {st.pid} no longer exists",
                deps,
                pid=st.pid,
                execution_id=st.execution_id,
            )
    if cached is not None:
        out_ref = refs.get(node.output)
        if out_ref is not None and out_ref.kind == "value" and out_ref.hash == cached[1]:
            done = st if latest is not None and latest.execution_id == cached[0] else None
            done = done or executions.read_status(repo, node.hash, ih, cached[0])
            worker = done.worker if done is not None else None
            return TaskStatus(
                node.name, "up-to-date", "cached", deps, execution_id=cached[0], worker=worker
            )
        return TaskStatus(node.name, "ready", "result in the cache", deps)
    if st is not None and st.state == "failed":
        return TaskStatus(
            node.name,
            "failed",
            f"exit code {st.exit_code}",
            deps,
            exit_code=st.exit_code,
            execution_id=st.execution_id,
            worker=st.worker,
        )
    if st is not None and st.state == "error":
        return TaskStatus(
            node.name,
            "error",
            st.message or "",
            deps,
            execution_id=st.execution_id,
            worker=st.worker,
        )
    return TaskStatus(node.name, "ready", "", deps)


def task_infos(repo: RepoStore, ws: str) -> list[TaskInfo]:
    """The tasks of a workspace's package, in dependency order."""
    graph = load_graph(repo, workspaces.open_deployed(repo, ws))
    return [
        TaskInfo(
            t.name,
            t.hash,
            [format_keypath(i) for i in t.inputs],
            format_keypath(t.output),
            t.command_ir,
        )
        for t in graph.tasks
    ]
