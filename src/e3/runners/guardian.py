"""A lifeline for task processes: they die when the engine dies, even by SIGKILL.

Tasks run in process groups of their own (so a timeout can kill a task and
everything it started). The engine registers each group with a small
guardian process through a pipe; if the engine dies, the pipe closes, and the
guardian kills every group still registered before exiting. Started on the
first registration, so runs that execute nothing never pay for it.
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

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _GUARDIAN_CODE],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self._proc

    def _send(self, line: str) -> None:
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None
            try:
                proc.stdin.write(line.encode())
                proc.stdin.flush()
            except BrokenPipeError:  # guardian died: start another next time
                self._proc = None

    def register(self, pgid: int) -> None:
        """Kill group ``pgid`` if the engine dies."""
        self._send(f"+{pgid}\n")

    def unregister(self, pgid: int) -> None:
        """The group is gone (or no longer ours)."""
        if self._proc is not None:
            self._send(f"-{pgid}\n")

    def close(self) -> None:
        """Stop the guardian (registered groups are killed)."""
        with self._lock:
            if self._proc is not None:
                if self._proc.stdin is not None:
                    self._proc.stdin.close()
                self._proc.wait()
                self._proc = None


def kill_group(pgid: int) -> None:
    """SIGKILL a process group, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
