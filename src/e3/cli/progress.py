"""Showing a run's events: plain lines, a live terminal display, or JSON lines.

Plain lines (when stdout is not a terminal) follow the reference:
``[START] t``, ``[DONE] t [12ms]``, ``[CACHED] t``, ``[FAIL] t [3ms] (exit code 1)``,
``[ERR] t: message``, ``[SKIP] t``. On a terminal a single status line is redrawn in
place (done/total, running tasks, cached and failed counts, elapsed time) and
only failures are printed as they happen. ``--json`` prints every event as one
JSON object per line.
"""

from __future__ import annotations

import json
import time
from typing import TextIO

from e3.model.events import Event


def _ms(seconds: float | None) -> str:
    return f"{round((seconds or 0) * 1000)}ms"


class PlainProgress:
    """The reference's line-per-event output."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, e: Event) -> None:
        """Print the event's line, if it has one."""
        line = None
        if e.kind == "task_started":
            line = f"  [START] {e.task}"
        elif e.kind == "task_completed":
            line = f"  [DONE] {e.task} [{_ms(e.duration)}]"
        elif e.kind == "task_cached":
            line = f"  [CACHED] {e.task}"
        elif e.kind == "task_failed":
            if e.exit_code is not None:
                line = f"  [FAIL] {e.task} [{_ms(e.duration)}] (exit code {e.exit_code})"
            else:
                line = f"  [ERR] {e.task}: {e.detail}"
        elif e.kind == "task_skipped":
            line = f"  [SKIP] {e.task} ({e.detail})"
        elif e.kind == "task_waiting":
            line = f"  [WAIT] {e.task} ({e.detail})"
        elif e.kind == "input_changed":
            line = f"  [INPUT] {e.detail} changed"
        elif e.kind == "task_invalidated":
            line = f"  [RERUN] {e.task} ({e.detail})"
        if line is not None:
            self.out.write(line + "\n")

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


class LiveProgress:
    """A status line redrawn in place on a terminal (at most every 100 ms)."""

    def __init__(self, out: TextIO, total: int = 0) -> None:
        self.out = out
        self.total = total
        self.done = self.cached = self.failed = self.skipped = 0
        self.running: dict[str, float] = {}
        self.t0 = time.monotonic()
        self._last_draw = 0.0
        self._width = 0

    def __call__(self, e: Event) -> None:
        """Update the counters and redraw (throttled)."""
        if e.kind == "run_started":
            self.total = e.counts.total if e.counts else self.total
        elif e.kind == "task_started" and e.task:
            self.running[e.task] = time.monotonic()
        elif e.kind in ("task_completed", "task_cached"):
            self.running.pop(e.task or "", None)
            self.done += 1
            self.cached += e.kind == "task_cached"
        elif e.kind == "task_failed":
            self.running.pop(e.task or "", None)
            self.failed += 1
            reason = f"exit code {e.exit_code}" if e.exit_code is not None else e.detail
            self._print(f"  [FAIL] {e.task} [{_ms(e.duration)}] ({reason})")
        elif e.kind in ("task_skipped", "task_waiting"):
            self.skipped += 1
        elif e.kind == "task_invalidated":
            self.done = max(0, self.done - 1)
        now = time.monotonic()
        if now - self._last_draw >= 0.1 or e.kind == "run_finished":
            self._draw()
            self._last_draw = now

    def _print(self, line: str) -> None:
        self._clear()
        self.out.write(line + "\n")
        self._draw()

    def _clear(self) -> None:
        if self._width:
            self.out.write("\r" + " " * self._width + "\r")
            self._width = 0

    def _draw(self) -> None:
        elapsed = time.monotonic() - self.t0
        names = ", ".join(sorted(self.running)[:3])
        more = len(self.running) - 3
        running = f" running: {names}{f' +{more}' if more > 0 else ''}" if self.running else ""
        text = (
            f"[{self.done}/{self.total}] cached {self.cached}, failed {self.failed}, "
            f"skipped {self.skipped}, {elapsed:.1f}s{running}"
        )
        text = text[:200]
        self._clear()
        self.out.write(text)
        self._width = len(text)
        self.out.flush()

    def close(self) -> None:
        """Remove the status line."""
        self._clear()
        self.out.flush()
