"""Copying a task's spooled stdout and stderr into its execution directory, capped.

Runners write into per-slot spool files that are reused from task to task;
only output that exists is copied, so a quiet task creates no log files.
Copies happen while a long task runs (so ``e3 logs --follow`` sees it) and
when it ends; past the cap the rest is counted and a marker says so.

While a long task runs, the engine looks at its two spool files on its tick
(five times a second) through :meth:`LogCopier.poll`, which backs off while a
task stays quiet: each look that finds nothing new makes the wait before the
next four times longer, up to :data:`QUIET_MAX`, and output resets it. With a
thousand tasks sleeping, these looks were most of what an idle engine did; now
a quiet task costs a ``stat`` of each spool (a path string kept from the start)
every two seconds, reached one second after it went quiet, and its first new
line after a silence shows within that. Past 500 running tasks the two seconds
stretch so that the looks stay at 250 a second in all (four seconds for a
thousand tasks). The
execution directory's paths are only built when there is something to write.
"""

from __future__ import annotations

import os
from pathlib import Path

from e3.core import executions

#: The longest wait between two looks at a quiet task's spools (seconds).
QUIET_MAX = 2.0
#: The first wait, and the wait after a look that found output (the engine's tick).
QUIET_MIN = 0.2
#: How much longer each quiet look makes the wait.
QUIET_FACTOR = 4
#: Looks at quiet tasks per second, at most, over all of them: past this many
#: running tasks the longest wait grows with their number instead.
QUIET_LOOKS_PER_SECOND = 250

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
        self._wait = QUIET_MIN
        self._next_look = 0.0

    @property
    def next_look(self) -> float:
        """When :meth:`poll` will next look at the spools (monotonic seconds)."""
        return self._next_look

    def poll(self, now: float, running: int = 1) -> None:
        """Copy what is new while the task runs, looking less often while it stays quiet.

        ``running``: how many tasks are being polled; with more than
        ``QUIET_MAX * QUIET_LOOKS_PER_SECOND`` the longest wait is stretched so
        that all of them together cost that many looks a second.
        """
        if now < self._next_look:
            return
        grew = self.copy(final=False)
        longest = max(QUIET_MAX, running / QUIET_LOOKS_PER_SECOND)
        self._wait = QUIET_MIN if grew else min(self._wait * QUIET_FACTOR, longest)
        self._next_look = now + self._wait

    def copy(self, *, final: bool, sizes: tuple[int, int] | None = None) -> bool:
        """Append what each spool gained since the last copy to its log (up to the cap).

        ``sizes``: the spools' sizes, when the runner reported them (then a
        spool holding nothing new is not even looked at). With ``final``, a
        log that lost bytes to the cap gets a marker saying how many. Returns
        whether either spool had grown.
        """
        grew = False
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
                grew = True
                self._append(k, seen)
            if final and self.dropped[k]:
                self._mark_truncated(k)
        return grew

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
            executions.make_attempt_dir(os.fspath(self.edir))
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
