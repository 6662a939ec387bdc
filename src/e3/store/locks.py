"""Workspace locks: ``flock`` on lock files that are never unlinked.

A lock file is created once and kept forever, so every process locks the same
inode (the reference unlinked on release, letting a later exclusive locker
lock a fresh inode while a shared holder still held the old one). The kernel
releases a dead process's locks, so a crash never leaves a workspace locked.

An exclusive holder writes a :class:`~e3.records.lock.LockState` into the
file for display only (shared holders, such as reads, write nothing). When a
lock is refused, the holders named in the conflict
message come from ``/proc/locks`` (the kernel's own list) where available,
enriched with the recorded operation; the recorded state is ignored if the
process it names is no longer alive (a stale record).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from e3.base.procs import ProcessIdentity, current_identity, process_command
from e3.errors import LockConflict, StorageError
from e3.records import lock as lock_record
from e3.records._util import utc_now

LockMode = Literal["shared", "exclusive"]


@dataclass(frozen=True)
class LockHolder:
    """A process holding a lock, as far as it can be known."""

    pid: int
    mode: LockMode
    command: str
    operation: str | None = None
    since: str | None = None

    def describe(self) -> str:
        """One-line description for messages."""
        what = f"pid {self.pid}"
        if self.command:
            what += f" ({self.command})"
        if self.operation:
            what += f", {self.operation}"
        if self.since:
            what += f" since {self.since}"
        return what


class HeldLock:
    """A lock this process holds; release it with :meth:`release` or a ``with`` block."""

    def __init__(self, path: Path, fd: int, mode: LockMode) -> None:
        self.path = path
        self.mode = mode
        self._fd: int | None = fd

    def release(self) -> None:
        """Release the lock (idempotent). The file stays in place, emptied of its holder record.

        The record says who holds the lock *now*: an exclusive holder clears it
        before unlocking, so no later conflict message can quote a holder that
        has gone.
        """
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self.mode == "exclusive":
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(
    path: Path,
    mode: LockMode,
    *,
    operation: lock_record.LockOperation,
    label: str,
    command: str | None = None,
) -> HeldLock:
    """Take a lock without waiting.

    Args:
        path: the lock file (created if missing, never removed).
        mode: ``shared`` (e.g. dataset writes, dataflows) or ``exclusive`` (deploy, remove).
        operation: recorded in the lock file for other processes' messages.
        label: what is locked, for the conflict message (``workspace 'ws'``).
        command: this process's command line (defaults to ``/proc/self/cmdline``).

    Raises:
        LockConflict: another process holds a conflicting lock; the message names it.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open lock file {path}: {os.strerror(exc.errno or 0)}") from exc
    flag = fcntl.LOCK_SH if mode == "shared" else fcntl.LOCK_EX
    try:
        fcntl.flock(fd, flag | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            who = holders(path)
            detail = "; ".join(h.describe() for h in who) if who else "another process"
            raise LockConflict(f"{label} is locked by {detail}", holder=detail) from None
        raise StorageError(f"cannot lock {path}: {os.strerror(exc.errno or 0)}") from exc
    if mode == "shared":
        # Shared holders leave the file alone (a read must not change repository bytes);
        # /proc/locks names them if someone needs to know.
        return HeldLock(path, fd, mode)
    me = current_identity()
    state = lock_record.LockState(
        operation=operation,
        holder=lock_record.ProcessHolder(
            me.pid, me.boot_id, me.start_time, command or process_command(me.pid)
        ).to_text(),
        acquired_at=utc_now(),
    )
    data = lock_record.encode(state)
    with contextlib.suppress(OSError):
        # Empty first: a kill between the two calls leaves an empty record, never a torn one.
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    return HeldLock(path, fd, mode)


def _proc_locks() -> list[str] | None:
    """The lines of ``/proc/locks`` (``None`` where there is no such file)."""
    try:
        with open("/proc/locks") as f:
            return f.read().splitlines()
    except OSError:
        return None


def _kernel_holders(path: Path, lines: list[str] | None) -> list[tuple[int, LockMode]] | None:
    """``(pid, mode)`` of flock holders of ``path`` from ``/proc/locks`` (None if unavailable)."""
    if lines is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    found: list[tuple[int, LockMode]] = []
    for line in lines:
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        try:
            kind_at = parts.index("FLOCK")
        except ValueError:
            continue
        try:
            access, pid, dev = parts[kind_at + 2], int(parts[kind_at + 3]), parts[kind_at + 4]
            major, minor, inode = dev.split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
        except (IndexError, ValueError):
            continue
        if key == want:
            found.append((pid, "exclusive" if access == "WRITE" else "shared"))
    return found


def recorded_state(path: Path) -> lock_record.LockState | None:
    """The lock state last written into ``path`` (``None`` if absent or unreadable)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data:
        return None
    try:
        return lock_record.decode(data)
    except Exception:
        return None


def holders_of(paths: list[Path]) -> list[LockHolder]:
    """Processes holding any of ``paths`` (``/proc/locks`` is read once for all)."""
    lines = _proc_locks()
    return [h for p in paths for h in _holders(p, lines)]


def holders(path: Path) -> list[LockHolder]:
    """Processes currently holding ``path`` (empty if it is free)."""
    return _holders(path, _proc_locks())


def _holders(path: Path, lines: list[str] | None) -> list[LockHolder]:
    state = recorded_state(path)
    recorded = lock_record.ProcessHolder.from_text(state.holder) if state else None
    if (
        recorded
        and state
        and not ProcessIdentity(recorded.pid, recorded.start_time, recorded.boot_id).is_alive()
    ):
        recorded = None  # stale: that process is gone
    kernel = _kernel_holders(path, lines)
    if kernel is None:
        if recorded is None or state is None:
            return []
        return [
            LockHolder(
                recorded.pid,
                "exclusive",
                recorded.command,
                state.operation,
                state.acquired_at.isoformat(),
            )
        ]
    out: list[LockHolder] = []
    for pid, mode in kernel:
        # Only exclusive holders write a record: a shared holder is never described by one
        # (the same process may have held the lock exclusively before, for something else).
        if (
            recorded is not None
            and state is not None
            and recorded.pid == pid
            and mode == "exclusive"
        ):
            out.append(
                LockHolder(
                    pid, mode, recorded.command, state.operation, state.acquired_at.isoformat()
                )
            )
        else:
            out.append(LockHolder(pid, mode, process_command(pid)))
    return out
