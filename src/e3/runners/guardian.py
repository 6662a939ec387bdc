"""A lifeline for task processes: they die when the engine dies, even by SIGKILL.

Tasks run in process groups of their own (so a timeout can kill a task and
everything it started). The engine registers each group with a small
guardian process through a pipe; if the engine dies, the pipe closes, and the
guardian kills every group still registered before exiting. Started on the
first registration, so runs that execute nothing never pay for it.

Each write wakes the guardian (a context switch on a busy machine), so a
finished group's unregistration may be deferred and sent with the next
registration, or by :meth:`Guardian.flush` within a few tens of milliseconds:
one write per task instead of two. A registration is never deferred. If the
engine dies with unregistrations pending, the guardian kills groups that have
already ended; that could only harm a new group if its id were reused within
that short delay, which would take the whole pid space to wrap around.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

_GUARDIAN_CODE = r"""
import os, signal, sys
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line.startswith("+"):
        groups.add(int(line[1:]))
    elif line.startswith("-"):
        groups.discard(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class Guardian:
    """Kills registered process groups if this process exits without unregistering them."""

    #: Deferred unregistrations are sent at the latest when this many are waiting.
    MAX_PENDING = 64

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._pending: list[str] = []
        #: Whether any registration was sent (a guardian that was never told of a group
        #: has nothing to kill, and is stopped without waiting for it to start up).
        self._told = False

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = spawn_guardian()
        return self._proc

    def _send(self, line: str) -> None:
        with self._lock:
            if not line and (self._proc is None or self._proc.poll() is not None):
                self._pending = []  # only unregistrations, and no guardian holds them
                return
            proc = self._ensure()
            assert proc.stdin is not None
            lines, self._pending = "".join(self._pending) + line, []
            self._told = True
            try:
                proc.stdin.write(lines.encode())
                proc.stdin.flush()
            except BrokenPipeError:  # guardian died (with its list): start another next time
                self._proc = None

    def register(self, pgid: int) -> None:
        """Kill group ``pgid`` if the engine dies."""
        self._send(f"+{pgid}\n")

    def unregister(self, pgid: int, *, defer: bool = False) -> None:
        """The group is gone (or no longer ours).

        ``defer``: send it with the next write; the caller then calls :meth:`flush`
        soon (see the module docstring).
        """
        if self._proc is None:
            return
        line = f"-{pgid}\n"
        if defer:
            with self._lock:
                self._pending.append(line)
                if len(self._pending) < self.MAX_PENDING:
                    return
            line = ""
        self._send(line)

    def flush(self) -> None:
        """Send deferred unregistrations now."""
        if self._pending:
            self._send("")

    def close(self) -> None:
        """Stop the guardian (registered groups are killed)."""
        self.flush()
        with self._lock:
            if self._proc is not None:
                if not self._told:
                    self._proc.kill()
                if self._proc.stdin is not None:
                    self._proc.stdin.close()
                self._proc.wait()
                self._proc = None


def spawn_guardian() -> subprocess.Popen[bytes]:
    """A guardian process, in a session of its own, reading registrations on its stdin."""
    return subprocess.Popen(
        [sys.executable, "-S", "-c", _GUARDIAN_CODE],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_group(pgid: int) -> None:
    """SIGKILL a process group, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
