"""Showing a run's events: plain lines, a live terminal display, or JSON lines.

Plain lines (when stdout is not a terminal) follow the reference:
``[START] t``, ``[DONE] t [12ms]``, ``[CACHED] t``, ``[FAIL] t [3ms] (exit code 1)``,
``[ERR] t: message``, ``[SKIP] t``. On a terminal (:class:`LiveProgress`) the same
per-task lines scroll by (without ``[START]``: the running tasks are shown below
them instead), each failure followed by the last lines of the task's stderr, and
a block at the bottom is redrawn a few times a second: counts, elapsed time, and
every task running now with how long it has been running. ``--json`` prints
every event as one JSON object per line.

The live block is drawn with plain ANSI escape sequences (cursor up, erase to end
of screen), not a terminal library: it is a handful of lines, and ``e3 start``
then costs no extra import.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import TextIO

from e3.model.events import Event

#: Lines of a failed task's stderr shown under its ``[FAIL]`` line on a terminal.
STDERR_LINES = 5


def _ms(seconds: float | None) -> str:
    return f"{round((seconds or 0) * 1000)}ms"


def event_line(e: Event) -> str | None:
    """The reference's line for an event (``None`` for events without one)."""
    if e.kind == "task_started":
        return f"  [START] {e.task}"
    if e.kind == "task_completed":
        return f"  [DONE] {e.task} [{_ms(e.duration)}]"
    if e.kind == "task_cached":
        return f"  [CACHED] {e.task}"
    if e.kind == "task_failed":
        if e.exit_code is not None:
            return f"  [FAIL] {e.task} [{_ms(e.duration)}] (exit code {e.exit_code})"
        return f"  [ERR] {e.task}: {e.detail}"
    if e.kind == "task_skipped":
        return f"  [SKIP] {e.task} ({e.detail})"
    if e.kind == "task_waiting":
        return f"  [WAIT] {e.task} ({e.detail})"
    if e.kind == "input_changed":
        return f"  [INPUT] {e.detail} changed"
    if e.kind == "task_invalidated":
        return f"  [RERUN] {e.task} ({e.detail})"
    return None


class PlainProgress:
    """The reference's line-per-event output."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, e: Event) -> None:
        """Print the event's line, if it has one."""
        line = event_line(e)
        if line is not None:
            self.out.write(line + "\n")

    def tick(self) -> None:
        """Flush the lines of the batch just shown.

        Called after each batch of events: to a pipe (``| tee``, a CI log, ``e3
        watch`` in a script) the output is block-buffered, and a task that runs
        for minutes stayed invisible behind its ``[START]`` line until the run
        ended. Once per batch, not per line: a cached run's thousands of lines
        come in a few batches.
        """
        self.out.flush()

    def close(self) -> None:
        """Nothing to clear."""
        self.out.flush()


class JsonProgress:
    """One JSON object per event."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, e: Event) -> None:
        """Print the event."""
        self.out.write(json.dumps(e.to_json()) + "\n")
        self.out.flush()

    def close(self) -> None:
        """Flush."""
        self.out.flush()


_COLOURS = {"[DONE]": "32", "[CACHED]": "36", "[FAIL]": "31", "[ERR]": "31", "[SKIP]": "2"}
_COLOURS.update({"[WAIT]": "33", "[RERUN]": "33", "[INPUT]": "33"})


class LiveProgress:
    """Per-task lines scrolling above a live block of counts and running tasks.

    ``follow`` (in :mod:`e3.cli.start`) waits at most :attr:`TICK` seconds for
    events and calls :meth:`tick` after each wait, so elapsed times advance five
    times a second even while nothing happens. Lines are cut to the terminal's
    width: a wrapped line would throw off the cursor movements that redraw the block.
    """

    #: Longest wait for events between two redraws (seconds).
    TICK = 0.2

    def __init__(self, out: TextIO, total: int = 0, *, colour: bool | None = None) -> None:
        self.out = out
        self.total = total
        self.done = self.cached = self.failed = self.skipped = 0
        self.running: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.colour = colour if colour is not None else "NO_COLOR" not in os.environ
        self._last_draw = 0.0
        self._drawn = 0  # lines of the block on screen now

    def __call__(self, e: Event) -> None:
        """Update the counters, print the event's line, and redraw (throttled)."""
        if e.kind == "run_started":
            self.total = e.counts.total if e.counts else self.total
            self.t0 = time.monotonic() - e.time
        elif e.kind == "task_started" and e.task:
            self.running[e.task] = time.monotonic()
            self._redraw(e)
            return
        elif e.kind in ("task_completed", "task_cached"):
            self.running.pop(e.task or "", None)
            self.done += 1
            self.cached += e.kind == "task_cached"
        elif e.kind == "task_failed":
            self.running.pop(e.task or "", None)
            self.failed += 1
        elif e.kind in ("task_skipped", "task_waiting"):
            self.skipped += 1
        elif e.kind == "task_invalidated":
            self.done = max(0, self.done - 1)
        line = event_line(e)
        if line is not None:
            lines = [line]
            if e.kind == "task_failed" and e.stderr:
                lines += [f"    | {s}" for s in e.stderr.splitlines()[-STDERR_LINES:]]
            self._print(lines)
        self._redraw(e)

    def tick(self) -> None:
        """Redraw the block (elapsed times move on without events)."""
        if time.monotonic() - self._last_draw >= self.TICK * 0.9:
            self._draw()

    def _redraw(self, e: Event) -> None:
        if time.monotonic() - self._last_draw >= 0.1 or e.kind == "run_finished":
            self._draw()

    def _width(self) -> int:
        return max(20, shutil.get_terminal_size((100, 24)).columns - 1)

    def _paint(self, text: str) -> str:
        if not self.colour:
            return text
        for tag, code in _COLOURS.items():
            if tag in text:
                return text.replace(tag, f"\x1b[{code}m{tag}\x1b[0m", 1)
        return text

    def _clear(self) -> None:
        if self._drawn:
            up = f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""
            self.out.write(f"{up}\r\x1b[J")
            self._drawn = 0

    def _print(self, lines: list[str]) -> None:
        self._clear()
        width = self._width()
        for line in lines:
            self.out.write(self._paint(line[:width]) + "\n")

    def block(self) -> list[str]:
        """The live block's lines: counts and elapsed time, then the running tasks."""
        now = time.monotonic()
        rows = max(3, shutil.get_terminal_size((100, 24)).lines // 2)
        head = (
            f"[{self.done}/{self.total}] running {len(self.running)}, cached {self.cached}, "
            f"failed {self.failed}, skipped {self.skipped}, {now - self.t0:.1f}s"
        )
        lines = [head]
        by_start = sorted(self.running.items(), key=lambda kv: kv[1])
        shown = by_start if len(by_start) <= rows else by_start[: rows - 1]
        lines += [f"  ▸ {name}  {now - t:.1f}s" for name, t in shown]
        if len(shown) < len(by_start):
            lines.append(f"  … and {len(by_start) - len(shown)} more")
        return lines

    def _draw(self) -> None:
        self._clear()
        width = self._width()
        lines = [s[:width] for s in self.block()]
        self.out.write("\n".join(lines))
        self._drawn = len(lines)
        self._last_draw = time.monotonic()
        self.out.flush()

    def close(self) -> None:
        """Remove the block (the summary follows)."""
        self._clear()
        self.out.flush()
