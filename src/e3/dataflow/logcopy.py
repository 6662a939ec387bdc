"""Copying a task's spooled stdout and stderr into its execution directory, capped.

Runners write into per-slot spool files that are reused from task to task;
only output that exists is copied, so a quiet task creates no log files.
Copies happen while a long task runs (so ``e3 logs --follow`` sees it) and
when it ends; past the cap the rest is counted and a marker says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from e3.core import executions


class LogCopier:
    """The copy state of one execution's two logs."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.copied = {executions.STDOUT_FILE: 0, executions.STDERR_FILE: 0}
        self.dropped = {executions.STDOUT_FILE: 0, executions.STDERR_FILE: 0}

    def copy(self, spool: Path, dest: Path, *, final: bool, size: int | None = None) -> None:
        """Append what ``spool`` gained since the last copy to ``dest`` (up to the cap).

        ``size``: the spool's size, if known (it is not looked at when it holds
        nothing new).
        """
        name = dest.name
        seen = self.copied[name] + self.dropped[name]
        if size is not None and size <= seen:
            if final and self.dropped[name]:
                self._mark_truncated(dest, name)
            return
        try:
            if os.stat(spool).st_size <= seen:
                data = b""
            else:
                with open(spool, "rb") as f:
                    f.seek(seen)
                    data = f.read()
        except FileNotFoundError:
            data = b""
        room = max(0, self.limit - self.copied[name])
        keep, extra = data[:room], len(data) - min(len(data), room)
        if keep:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "ab") as out:
                out.write(keep)
            self.copied[name] += len(keep)
        self.dropped[name] += extra
        if final and self.dropped[name]:
            self._mark_truncated(dest, name)

    def _mark_truncated(self, dest: Path, name: str) -> None:
        with open(dest, "ab") as out:
            out.write(
                f"\n[e3: log truncated: {self.dropped[name]} more bytes were written "
                f"beyond the {self.limit}-byte limit]\n".encode()
            )
