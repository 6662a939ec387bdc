"""Single-flight: at most one process runs a given (task, inputs) at a time.

A second runner finds the pair locked, waits, then finds the first one's
result in the execution cache instead of computing it again.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import struct
from pathlib import Path

from e3.store.repository import RepoStore

_FLIGHT_LOCK = ".lock"


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
        self.pair = (task_hash, inputs_hash)
        self._taken = False
        self._fd: int | None = None  # the per-pair lock file, without OFD locks

    @property
    def fallback(self) -> Path:
        """The per-pair lock file, used where OFD locks are missing."""
        return self.table.repo.executions_dir.joinpath(*self.pair, _FLIGHT_LOCK)

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
