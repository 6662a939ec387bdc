"""Copying a task's spooled stdout and stderr into its execution directory, capped.

Runners write into per-slot spool files that are reused from task to task;
only output that exists is copied, so a quiet task creates no log files.
Copies happen while a long task runs (so ``e3 logs --follow`` sees it) and
when it ends; past the cap the rest is counted and a marker says so.

The engine looks at every long task's two spool files on every tick (five
times a second), so with a thousand tasks sleeping, a quiet log's check is
most of what an idle engine does: it is one ``stat`` of a path string kept
from the start, and the execution directory's paths are only built when there
is something to write.
"""

from __future__ import annotations

import os
from pathlib import Path

from e3.core import executions

#: The two streams, in the order of the spools and of runner-reported sizes.
_NAMES = (executions.STDOUT_FILE, executions.STDERR_FILE)


class LogCopier:
    """The copy state of one execution's two logs."""

    def __init__(self, limit: int, spool_out: Path, spool_err: Path, edir: Path) -> None:
        self.limit = limit
        self.edir = edir
        self._spools = (os.fspath(spool_out), os.fspath(spool_err))
        self.copied = [0, 0]
        self.dropped = [0, 0]

    def copy(self, *, final: bool, sizes: tuple[int, int] | None = None) -> None:
        """Append what each spool gained since the last copy to its log (up to the cap).

        ``sizes``: the spools' sizes, when the runner reported them (then a
        spool holding nothing new is not even looked at). With ``final``, a
        log that lost bytes to the cap gets a marker saying how many.
        """
        for k in (0, 1):
            seen = self.copied[k] + self.dropped[k]
            if sizes is not None:
                size = sizes[k]
            else:
                try:
                    size = os.stat(self._spools[k]).st_size
                except FileNotFoundError:
                    size = 0
            if size > seen:
                self._append(k, seen)
            if final and self.dropped[k]:
                self._mark_truncated(k)

    def _append(self, k: int, seen: int) -> None:
        try:
            with open(self._spools[k], "rb") as f:
                f.seek(seen)
                data = f.read()
        except FileNotFoundError:
            return
        room = max(0, self.limit - self.copied[k])
        keep, extra = data[:room], len(data) - min(len(data), room)
        if keep:
            self.edir.mkdir(parents=True, exist_ok=True)
            with open(self.edir / _NAMES[k], "ab") as out:
                out.write(keep)
            self.copied[k] += len(keep)
        self.dropped[k] += extra

    def _mark_truncated(self, k: int) -> None:
        with open(self.edir / _NAMES[k], "ab") as out:
            out.write(
                f"\n[e3: log truncated: {self.dropped[k]} more bytes were written "
                f"beyond the {self.limit}-byte limit]\n".encode()
            )
