"""Process identity on Linux: pid + start time + boot id.

A pid alone is not an identity (pids are reused), so records that name a
process (lock holders, running executions) also store its start time (field
22 of ``/proc/<pid>/stat``, in clock ticks since boot) and the boot id. A
process is alive only if all three still match. Elsewhere the start time is
0 and the boot id ``unknown``, and liveness falls back to "pid exists".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

_UNKNOWN_BOOT = "unknown-boot-id"
_HAS_PROC = os.path.isdir("/proc/self")


@lru_cache(maxsize=1)
def boot_id() -> str:
    """This machine's current boot id (changes at every reboot)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return _UNKNOWN_BOOT


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or ``None`` if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        if _HAS_PROC:
            return None
        return 0 if _pid_exists(pid) else None
    # The command name (field 2) is parenthesised and may contain spaces.
    rest = stat[stat.rfind(b")") + 2 :].split()
    if rest[:1] in ([b"Z"], [b"X"]):  # a zombie (dead, not yet reaped) is not running
        return None
    try:
        return int(rest[19])  # field 22 overall; rest starts at field 3
    except (IndexError, ValueError):
        return None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_command(pid: int) -> str:
    """A process's command line, space-joined ("" if unknown)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    return " ".join(p.decode("utf-8", "replace") for p in raw.split(b"\0") if p)


@dataclass(frozen=True)
class ProcessIdentity:
    """Who a process is, durably."""

    pid: int
    start_time: int
    boot_id: str

    def is_alive(self) -> bool:
        """Whether this exact process still runs."""
        if self.boot_id != boot_id():
            return False
        current = process_start_time(self.pid)
        if current is None:
            return False
        return self.start_time == 0 or current == self.start_time


def current_identity() -> ProcessIdentity:
    """Identity of the calling process."""
    pid = os.getpid()
    return ProcessIdentity(pid, process_start_time(pid) or 0, boot_id())


def identity_of(pid: int) -> ProcessIdentity | None:
    """Identity of another live process, or ``None`` if it is gone."""
    start = process_start_time(pid)
    if start is None:
        return None
    return ProcessIdentity(pid, start, boot_id())
