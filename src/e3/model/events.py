"""Events a dataflow run emits.

One typed stream that the CLI's progress display, ``--json`` output and the
HTTP API all consume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal[
    "run_started",
    "task_started",
    "task_completed",
    "task_cached",
    "task_failed",
    "task_skipped",
    "task_waiting",
    "task_invalidated",
    "input_changed",
    "run_finished",
]


@dataclass(frozen=True)
class Event:
    """Something that happened in a run.

    ``task`` names the task for task events; ``duration`` is in seconds;
    ``detail`` holds a reason or error message; ``outcome`` is set on
    ``run_finished``; ``counts`` carries the run's tallies then.
    """

    kind: EventKind
    seq: int
    time: float
    task: str | None = None
    duration: float | None = None
    exit_code: int | None = None
    detail: str | None = None
    execution_id: str | None = None
    output_hash: str | None = None
    pid: int | None = None
    outcome: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The event as a JSON object (``None`` fields left out)."""
        out: dict[str, object] = {"event": self.kind, "seq": self.seq, "time": round(self.time, 6)}
        for name in (
            "task",
            "duration",
            "exit_code",
            "detail",
            "execution_id",
            "output_hash",
            "pid",
            "outcome",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 6) if isinstance(value, float) else value
        if self.counts:
            out["counts"] = dict(self.counts)
        return out
