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

import errno
import fcntl
import hashlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from e3.base.names import is_execution_id, is_hash, new_uuid7
from e3.base.procs import ProcessIdentity
from e3.errors import E3Error
from e3.records import execution as record
from e3.records._util import utc_now
from e3.records.execution import ExecutionStatus
from e3.store import atomic
from e3.store.repository import RepoStore

STATUS_FILE = "status.beast2"
OUTPUT_FILE = "output"
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
_FLIGHT_LOCK = ".lock"


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
    data = atomic.read_bytes(repo.execution_dir(task_hash, inputs_hash, execution_id) / STATUS_FILE)
    if not data:
        return None
    try:
        return record.decode(data)
    except E3Error:
        return None


def cached_output(repo: RepoStore, task_hash: str, inputs_hash: str) -> tuple[str, str] | None:
    """The newest successful attempt whose output object is still stored.

    Returns ``(execution_id, output_hash)``, or ``None``.
    """
    base = f"{repo.executions_dir}{os.sep}{task_hash}{os.sep}{inputs_hash}{os.sep}"
    for eid in reversed(execution_ids(repo, task_hash, inputs_hash)):
        raw = atomic.read_bytes(f"{base}{eid}{os.sep}{OUTPUT_FILE}")
        if not raw:
            continue
        h = raw.decode("utf-8", "replace").strip()
        if is_hash(h) and repo.objects.has(h):
            return eid, h
    return None


def latest(repo: RepoStore, task_hash: str, inputs_hash: str) -> Execution | None:
    """The newest attempt for (task, inputs)."""
    ids = execution_ids(repo, task_hash, inputs_hash)
    if not ids:
        return None
    eid = ids[-1]
    return Execution(task_hash, inputs_hash, eid, read_status(repo, task_hash, inputs_hash, eid))


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


def begin(repo: RepoStore, task_hash: str, inputs_hash: str) -> tuple[str, Path, datetime]:
    """Create a new attempt directory.

    The ``running`` status is written once the process is known, and the logs
    as the task writes them.
    """
    eid = new_uuid7()
    d = repo.execution_dir(task_hash, inputs_hash, eid)
    try:
        d.mkdir(parents=True)
    except OSError as exc:
        raise atomic.storage_error(exc, "create", d) from exc
    return eid, d, utc_now()


def write_status(d: Path, status: ExecutionStatus) -> None:
    """Replace an attempt's status record."""
    atomic.write_bytes(d / STATUS_FILE, record.encode(status), durable=False)


def record_success(d: Path, status: ExecutionStatus) -> None:
    """Final ``success`` status and the ``output`` file the cache reads."""
    write_success_files(d, record.encode(status), status.output_hash or "")


def write_success_files(d: Path, status_bytes: bytes, output_hash: str) -> None:
    """Write an encoded ``success`` status and the ``output`` file.

    Plain file I/O, so that a background thread can do it. Creates the
    attempt's directory if nothing created it yet.
    """
    try:
        d.mkdir(parents=True)
        fresh = True
    except FileExistsError:
        fresh = False
    if fresh:
        # Nobody has seen this directory yet: create the files in place (readers
        # treat a half-written file as absent), sparing two renames per task.
        atomic.create_file(d / STATUS_FILE, status_bytes)
        atomic.create_file(d / OUTPUT_FILE, f"{output_hash}\n".encode())
        return
    atomic.write_bytes(d / STATUS_FILE, status_bytes, durable=False)
    atomic.write_bytes(d / OUTPUT_FILE, f"{output_hash}\n".encode(), durable=False)


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


class FlightTable:
    """One run's single-flight locks: at most one process runs a (task, inputs) at a time.

    Each lock is an exclusive open-file-description lock (Linux ``F_OFD_SETLK``)
    on one byte of ``executions/.flight.lock``, at an offset derived from the
    (task, inputs) pair. The whole run shares one descriptor: a run holds a
    lock per task until its result is published, and hundreds of descriptors
    with locks made every task spawn slow (the child closes each one, and each
    close walks the file's lock list). Another run, even in the same process,
    has its own descriptor and is excluded as before; within the run a held
    byte counts as taken. A second runner finds the byte locked, waits, then
    finds the first one's result in the cache instead of computing it again.
    Where OFD locks are missing, a ``flock`` on a per-pair lock file does the
    same job.
    """

    _STRUCT = struct.Struct("hhxxxxqqixxxx")

    def __init__(self, repo: RepoStore) -> None:
        self.repo = repo
        self._fd: int | None = None
        self._held: set[int] = set()
        self._ofd = hasattr(fcntl, "F_OFD_SETLK")

    def lock(self, task_hash: str, inputs_hash: str) -> FlightLock:
        """The (not yet taken) lock of one (task, inputs) pair."""
        return FlightLock(self, task_hash, inputs_hash)

    def close(self) -> None:
        """Drop every lock still held (closing the descriptor does)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        self._held.clear()

    def _try_ofd(self, offset: int) -> bool | None:
        """Take a byte; ``None`` if the kernel lacks OFD locks."""
        if offset in self._held:
            return False
        if self._fd is None:
            self._fd = _open_lock_file(self.repo.executions_dir / ".flight.lock")
        try:
            fcntl.fcntl(
                self._fd, fcntl.F_OFD_SETLK, self._STRUCT.pack(fcntl.F_WRLCK, 0, offset, 1, 0)
            )
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            if exc.errno == errno.EINVAL:  # kernel without OFD locks
                self._ofd = False
                return None
            raise
        self._held.add(offset)
        return True

    def _release_ofd(self, offset: int) -> None:
        if offset in self._held and self._fd is not None:
            fcntl.fcntl(
                self._fd, fcntl.F_OFD_SETLK, self._STRUCT.pack(fcntl.F_UNLCK, 0, offset, 1, 0)
            )
            self._held.discard(offset)


class FlightLock:
    """The single-flight lock of one (task, inputs) pair (see :class:`FlightTable`)."""

    def __init__(self, table: FlightTable, task_hash: str, inputs_hash: str) -> None:
        self.table = table
        digest = hashlib.sha256(f"{task_hash}/{inputs_hash}".encode()).digest()
        self.offset = int.from_bytes(digest[:7], "big")
        self.fallback = table.repo.executions_dir / task_hash / inputs_hash / _FLIGHT_LOCK
        self._taken = False
        self._fd: int | None = None  # the per-pair lock file, without OFD locks

    def try_acquire(self) -> bool:
        """Take the lock if free."""
        if self.table._ofd:
            got = self.table._try_ofd(self.offset)
            if got is not None:
                self._taken = got
                return got
        if self._fd is None:
            self._fd = _open_lock_file(self.fallback)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def release(self) -> None:
        """Release (idempotent)."""
        if self._taken:
            self._taken = False
            self.table._release_ofd(self.offset)
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def durability_barrier(repo: RepoStore) -> None:
    """Make everything a run wrote durable (one file-system sync)."""
    if repo.durable:
        atomic.sync_filesystem(repo.root)
