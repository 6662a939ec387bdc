r"""The execution cache: one directory per attempt to run a task on given inputs.

``executions/<taskHash>/<inputsHash>/<executionId>/`` holds ``status.beast2``
(running → success | failed | error), ``output`` (``<hash>\n``, success only)
and the task's ``stdout.txt`` / ``stderr.txt``. Execution ids are UUIDv7, so
sorting them sorts attempts by time. The cache is shared by every workspace of
the repository: a result computed for one is found by all.

Status and output files are written atomically but not fsynced one by one:
losing them in a power cut only means a task runs again. The run calls
:func:`durability_barrier` when it ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from e3.base import atomic
from e3.base.names import is_execution_id, is_hash, new_uuid7
from e3.base.procs import ProcessIdentity
from e3.errors import E3Error
from e3.records import execution as record
from e3.records._util import utc_now
from e3.records.execution import ExecutionStatus
from e3.store.repository import RepoStore

STATUS_FILE = "status.beast2"
OUTPUT_FILE = "output"
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"


@dataclass(frozen=True)
class Execution:
    """One recorded attempt."""

    task_hash: str
    inputs_hash: str
    execution_id: str
    status: ExecutionStatus | None

    def dir(self, repo: RepoStore) -> Path:
        """Its directory."""
        return repo.execution_dir(self.task_hash, self.inputs_hash, self.execution_id)


def execution_ids(repo: RepoStore, task_hash: str, inputs_hash: str) -> list[str]:
    """Ids of the attempts for (task, inputs), oldest first."""
    try:
        names = os.listdir(f"{repo.executions_dir}{os.sep}{task_hash}{os.sep}{inputs_hash}")
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n for n in names if is_execution_id(n))


def read_status(
    repo: RepoStore, task_hash: str, inputs_hash: str, execution_id: str
) -> ExecutionStatus | None:
    """The status record of an attempt (``None`` if missing or unreadable)."""
    data = atomic.read_bytes(
        f"{repo.executions_dir}{os.sep}{task_hash}{os.sep}{inputs_hash}{os.sep}"
        f"{execution_id}{os.sep}{STATUS_FILE}"
    )
    if not data:
        return None
    try:
        return record.decode(data)
    except E3Error:
        return None


def output_of(repo: RepoStore, task_hash: str, inputs_hash: str, execution_id: str) -> str | None:
    """The output hash a successful attempt recorded (``None``: not a success, or unreadable)."""
    raw = atomic.read_bytes(
        f"{repo.executions_dir}{os.sep}{task_hash}{os.sep}{inputs_hash}{os.sep}"
        f"{execution_id}{os.sep}{OUTPUT_FILE}"
    )
    if not raw:
        return None
    h = raw.decode("utf-8", "replace").strip()
    return h if is_hash(h) else None


def cached_output(repo: RepoStore, task_hash: str, inputs_hash: str) -> tuple[str, str] | None:
    """The newest successful attempt whose output object is still stored, intact.

    Returns ``(execution_id, output_hash)``, or ``None``. The object is re-hashed:
    a result whose object was lost or damaged is not a result, so the task runs
    again and its new output replaces the damaged file.
    """
    return newest_intact(repo, task_hash, inputs_hash, execution_ids(repo, task_hash, inputs_hash))


def newest_intact(
    repo: RepoStore, task_hash: str, inputs_hash: str, ids: list[str]
) -> tuple[str, str] | None:
    """:func:`cached_output` among attempts ``ids`` (:func:`execution_ids`) already listed."""
    for eid in reversed(ids):
        h = output_of(repo, task_hash, inputs_hash, eid)
        if h is not None and repo.objects.is_intact(h):
            return eid, h
    return None


def latest(repo: RepoStore, task_hash: str, inputs_hash: str) -> Execution | None:
    """The newest attempt for (task, inputs)."""
    return _latest(repo, task_hash, inputs_hash, execution_ids(repo, task_hash, inputs_hash))


def _latest(repo: RepoStore, task_hash: str, inputs_hash: str, ids: list[str]) -> Execution | None:
    if not ids:
        return None
    eid = ids[-1]
    return Execution(task_hash, inputs_hash, eid, read_status(repo, task_hash, inputs_hash, eid))


def latest_and_cached(
    repo: RepoStore, task_hash: str, inputs_hash: str
) -> tuple[Execution | None, tuple[str, str] | None]:
    """:func:`latest` and :func:`cached_output` from one listing of the attempts.

    ``workspace status`` asks both of every task; on 10,000 tasks the second
    listing of each directory was a tenth of its time.
    """
    ids = execution_ids(repo, task_hash, inputs_hash)
    return _latest(repo, task_hash, inputs_hash, ids), newest_intact(
        repo, task_hash, inputs_hash, ids
    )


def all_for_task(repo: RepoStore, task_hash: str) -> Iterator[Execution]:
    """Every attempt of a task, across all input combinations (unordered)."""
    root = repo.executions_dir / task_hash
    try:
        inputs = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return
    for ih in inputs:
        if not is_hash(ih):
            continue
        for eid in execution_ids(repo, task_hash, ih):
            yield Execution(task_hash, ih, eid, read_status(repo, task_hash, ih, eid))


def is_live(status: ExecutionStatus) -> bool:
    """Whether a ``running`` record's process is still alive."""
    if status.state != "running" or status.pid is None:
        return False
    return ProcessIdentity(status.pid, status.pid_start_time or 0, status.boot_id or "").is_alive()


def new_attempt(repo: RepoStore, task_hash: str, inputs_hash: str) -> tuple[str, Path, datetime]:
    """Id, directory (not yet created) and start time of a new attempt."""
    eid = new_uuid7()
    return eid, repo.execution_dir(task_hash, inputs_hash, eid), utc_now()


def write_status(d: Path | str, status: ExecutionStatus) -> None:
    """Replace an attempt's status record."""
    atomic.write_bytes(f"{d}{os.sep}{STATUS_FILE}", record.encode(status), durable=False)


def write_success_files(d: Path | str, status_bytes: bytes, output_hash: str) -> None:
    """Write an encoded ``success`` status and the ``output`` file.

    Plain file I/O, so that a background thread can do it. Creates the
    attempt's directory if nothing created it yet. Paths are joined as strings:
    this runs once per task on the publishing thread, beside the loop, and
    joining ``Path`` objects was a third of that thread's time.
    """
    d = os.fspath(d)
    status_file, output_file = f"{d}{os.sep}{STATUS_FILE}", f"{d}{os.sep}{OUTPUT_FILE}"
    if make_attempt_dir(d):
        # Nobody has seen this directory yet: create the files in place (readers
        # treat a half-written file as absent), sparing two renames per task.
        atomic.create_file(status_file, status_bytes)
        atomic.create_file(output_file, f"{output_hash}\n".encode())
        return
    atomic.write_bytes(status_file, status_bytes, durable=False)
    atomic.write_bytes(output_file, f"{output_hash}\n".encode(), durable=False)


def write_success(d: Path | str, status: ExecutionStatus) -> None:
    """:func:`write_success_files` of a ``success`` status not yet encoded."""
    assert status.output_hash is not None
    write_success_files(d, record.encode(status), status.output_hash)


def make_attempt_dir(d: str) -> bool:
    """Create an attempt's directory, and its task and inputs directories if missing.

    Returns whether ``d`` is new. Top down: most attempts are the first of their
    task or inputs, and ``mkdir(parents=True)`` first fails on each missing level
    before it creates them (five calls where three do).
    """
    inputs_dir = os.path.dirname(d)
    task_dir = os.path.dirname(inputs_dir)
    try:
        for parent in (task_dir, inputs_dir):
            with contextlib.suppress(FileExistsError):
                os.mkdir(parent)
    except FileNotFoundError:  # no executions directory at all: make the whole path
        os.makedirs(inputs_dir, exist_ok=True)
    try:
        os.mkdir(d)
    except FileExistsError:
        return False
    return True


def mark_interrupted(repo: RepoStore, task_hash: str, inputs_hash: str) -> int:
    """Record earlier attempts at (task, inputs) whose process died as ``error``.

    Called before running a task again: an attempt still marked ``running``
    whose process is gone (or that never got as far as a status) was cut short
    by a killed engine. Returns how many were marked.
    """
    marked = 0
    for eid in execution_ids(repo, task_hash, inputs_hash):
        d = repo.execution_dir(task_hash, inputs_hash, eid)
        if (d / OUTPUT_FILE).exists():
            continue
        st = read_status(repo, task_hash, inputs_hash, eid)
        if st is None:
            if (d / STATUS_FILE).exists():
                continue  # unreadable: leave it for a person to look at
            st = ExecutionStatus("running", eid, (), utc_now())
        elif st.state != "running" or is_live(st):
            continue
        if (
            mark_dead(
                repo,
                Execution(task_hash, inputs_hash, eid, st),
                "interrupted: the engine stopped before the task finished",
            )
            is not None
        ):
            marked += 1
    return marked


def mark_dead(repo: RepoStore, execution: Execution, message: str) -> ExecutionStatus | None:
    """Rewrite a ``running`` record whose process died into an ``error``."""
    st = execution.status
    if st is None or st.state != "running":
        return st
    dead = ExecutionStatus(
        "error", st.execution_id, st.input_hashes, st.started_at, utc_now(), message=message
    )
    write_status(execution.dir(repo), dead)
    return dead


def durability_barrier(repo: RepoStore) -> None:
    """Make everything a run wrote durable (one file-system sync)."""
    if repo.durable:
        atomic.sync_filesystem(repo.root)
