"""Task logs: which execution is "current", and reading its logs by offset.

The current execution of a task is the newest attempt for the workspace's
current input hashes; when there is none (inputs changed since), it is the
newest attempt of the task on any inputs, by execution id (the reference
picked the first directory it listed, not the newest).
"""

from __future__ import annotations

import os
import time

from e3.base.names import is_execution_id, uuid7_time
from e3.core import executions, tasks, workspaces
from e3.core.executions import Execution
from e3.dataflow.loader import load_graph
from e3.errors import ExecutionNotFound, TaskNotFound
from e3.model.results import ExecutionInfo, LogChunk, TaskLogSummary
from e3.records import task as task_record
from e3.store.repository import RepoStore

DEFAULT_CHUNK = 64 << 10


def _task_now(repo: RepoStore, ws: str, task: str) -> tuple[str, str | None]:
    """A task's hash and the inputs hash of its current inputs (``None``: one is unset).

    Only this task's object is decoded: the whole graph of a 10,000-task package
    costs 0.3 s to load, and a command about one task does not need it.
    """
    dep = workspaces.open_deployed(repo, ws)
    task_hash = dep.package.tasks.get(task)
    if task_hash is None:
        raise TaskNotFound(f"no task '{task[:200]}' in workspace '{ws}'", task=task[:200])
    inputs = task_record.decode(repo.objects.get(task_hash)).inputs
    refs = {p: workspaces.read_ref(dep, p) for p in inputs}
    return task_hash, tasks.current_inputs_hash(refs, inputs)


def current_execution(repo: RepoStore, ws: str, task: str) -> Execution | None:
    """The execution whose logs ``e3 logs ws.task`` shows."""
    task_hash, ih = _task_now(repo, ws, task)
    return _current(repo, task_hash, ih)


def _current(repo: RepoStore, task_hash: str, ih: str | None) -> Execution | None:
    if ih is not None:
        found = executions.latest(repo, task_hash, ih)
        if found is not None:
            return found
    newest: Execution | None = None
    for ex in executions.all_for_task(repo, task_hash):
        if newest is None or ex.execution_id > newest.execution_id:
            newest = ex
    return newest


def require_execution(repo: RepoStore, ws: str, task: str) -> Execution:
    """:func:`current_execution`, or :class:`ExecutionNotFound`."""
    ex = current_execution(repo, ws, task)
    if ex is None:
        raise ExecutionNotFound(f"task '{task}' has not run yet in workspace '{ws}'", task=task)
    return ex


def find_execution(repo: RepoStore, ws: str, task: str, execution_id: str | None) -> Execution:
    """The task's current execution, or its execution ``execution_id``."""
    if execution_id is None:
        return require_execution(repo, ws, task)
    task_hash, ih = _task_now(repo, ws, task)
    for other in executions.all_for_task(repo, task_hash):
        if other.execution_id == execution_id:
            return other
    fresh = (
        is_execution_id(execution_id) and time.time() - uuid7_time(execution_id) < ABANDONED_AFTER
    )
    if fresh and ih is not None:
        # Just started: its directory appears once it writes something. It runs on the
        # current inputs; until then its logs are empty, and not over.
        return Execution(task_hash, ih, execution_id, None)
    raise ExecutionNotFound(f"task '{task}' has no execution {execution_id[:40]!r}", task=task)


def execution_info(ex: Execution) -> ExecutionInfo:
    """The porcelain's view of an execution."""
    state: str = ex.status.state if ex.status else "unknown"
    if state == "running" and ex.status and not executions.is_live(ex.status):
        state = "died"
    worker = ex.status.worker if ex.status else None
    return ExecutionInfo(ex.task_hash, ex.inputs_hash, ex.execution_id, state, worker)


#: An execution with no live process and no activity for this long is over for good
#: (its engine died before recording how it ended).
ABANDONED_AFTER = 2.0


def is_finished(repo: RepoStore, ex: Execution) -> bool:
    """Whether an execution has ended and its logs are complete.

    A terminal status says so (the engine copies the last log bytes before
    writing it). Without one, the execution is over only if its process is gone
    (or it never recorded one) and nothing in its directory changed for
    :data:`ABANDONED_AFTER` seconds: its engine died.
    """
    st = executions.read_status(repo, ex.task_hash, ex.inputs_hash, ex.execution_id)
    if st is not None and st.state != "running":
        return True
    if st is not None and executions.is_live(st):
        return False
    try:
        newest = max(e.stat().st_mtime for e in os.scandir(ex.dir(repo)))
    except (OSError, ValueError):
        newest = uuid7_time(ex.execution_id)  # nothing written yet: as old as the attempt
    return time.time() - newest > ABANDONED_AFTER


def read_log(
    repo: RepoStore, ex: Execution, stream: str, offset: int = 0, limit: int = DEFAULT_CHUNK
) -> LogChunk:
    """Bytes ``[offset, offset+limit)`` of an execution's stdout or stderr."""
    name = executions.STDOUT_FILE if stream == "stdout" else executions.STDERR_FILE
    path = ex.dir(repo) / name
    finished = is_finished(repo, ex)
    try:
        with open(path, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            f.seek(max(0, offset))
            data = f.read(max(0, limit))
    except FileNotFoundError:  # the task has not written anything (yet)
        return LogChunk(b"", offset, 0, 0, finished)
    return LogChunk(data, offset, len(data), total, finished and offset + len(data) >= total)


def task_log_summaries(repo: RepoStore, ws: str) -> list[TaskLogSummary]:
    """Every task with its latest state and number of executions."""
    dep = workspaces.open_deployed(repo, ws)
    graph = load_graph(repo, dep)
    out = []
    for node in graph.tasks:
        runs = list(executions.all_for_task(repo, node.hash))
        if not runs:
            out.append(TaskLogSummary(node.name, "never run", 0))
            continue
        newest = max(runs, key=lambda e: e.execution_id)
        state: str = newest.status.state if newest.status else "unknown"
        if state == "running" and newest.status and not executions.is_live(newest.status):
            state = "died"
        out.append(TaskLogSummary(node.name, state, len(runs)))
    return out
