"""Events a dataflow run emits.

One typed stream that the CLI's progress display, ``--json`` output, the HTTP
API, the web view and the run's event log on disk all consume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

from e3.model.runs import Counts, FinalStatus, RunOutcome, TaskProblem

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
EVENT_KINDS: frozenset[str] = frozenset(get_args(EventKind))
_COUNT_FIELDS = frozenset(f.name for f in fields(Counts))

_OPTIONAL = (
    "task",
    "duration",
    "exit_code",
    "detail",
    "execution_id",
    "output_hash",
    "pid",
    "outcome",
    "worker",
    "stderr",
)


@dataclass(frozen=True)
class Event:
    """Something that happened in a run.

    ``task`` names the task for task events; ``duration`` is in seconds;
    ``detail`` holds a reason or error message; ``outcome`` is set on
    ``run_finished`` and ``counts`` carries the run's tallies then (and the
    number of tasks on ``run_started``); ``worker`` says where a task ran when
    that is not this machine.
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
    worker: str | None = None
    stderr: str | None = None
    counts: Counts | None = None

    def to_json(self) -> dict[str, object]:
        """The event as a JSON object (``None`` fields left out)."""
        out: dict[str, object] = {"event": self.kind, "seq": self.seq, "time": round(self.time, 6)}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                out[name] = round(value, 6) if isinstance(value, float) else value
        if self.counts is not None:
            out["counts"] = asdict(self.counts)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        """Inverse of :meth:`to_json` (raises ``ValueError`` on anything else)."""
        kind = data.get("event")
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        counts = data.get("counts")
        return cls(
            kind,
            int(data["seq"]),
            float(data["time"]),
            counts=Counts(**{k: int(v) for k, v in counts.items() if k in _COUNT_FIELDS})
            if isinstance(counts, dict)
            else None,
            **{name: value for name in _OPTIONAL if (value := data.get(name)) is not None},
        )


def outcome_from_events(
    run_id: str, status: FinalStatus, events: list[Event], duration: float = 0.0
) -> RunOutcome:
    """A run's outcome rebuilt from its event log (for runs another process executed)."""
    failed: dict[str, TaskProblem] = {}
    waiting: dict[str, TaskProblem] = {}
    counts = Counts()
    for e in events:
        if e.kind == "task_failed" and e.task:
            failed[e.task] = TaskProblem(e.task, e.detail or "failed", e.stderr or "")
        elif e.kind in ("task_waiting", "task_skipped") and e.task and e.detail:
            if not e.detail.startswith("upstream task"):
                waiting[e.task] = TaskProblem(e.task, e.detail)
        elif e.kind in ("task_completed", "task_cached", "task_invalidated") and e.task:
            failed.pop(e.task, None)
            waiting.pop(e.task, None)
        elif e.kind == "run_finished":
            counts = e.counts or counts
            duration = e.duration or duration
    return RunOutcome(
        run_id, status, counts, duration, list(failed.values()), list(waiting.values())
    )
