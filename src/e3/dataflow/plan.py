"""The run plan: a pure state machine deciding which task may run next.

The plan works from one *snapshot* of the root inputs (datasets no task
writes). A task is ready when every input has a value in this run: root
inputs from the snapshot, task outputs from upstream tasks completed in this
run. Because every launch reads the snapshot, two branches of a diamond can
only both be complete for the same snapshot, so a merge never mixes old and new
values of an input.

When a root input changes during the run (``e3 set`` while ``e3 start``
runs), :meth:`Plan.inputs_changed` moves to a new snapshot: every completed
task that depends on the changed input goes back to pending and every running
one is marked stale (its result is discarded when it ends and it runs again).
This is what the reference's version vectors achieve, without having to carry
the vectors: a task's output always reflects the snapshot its whole upstream
was computed from.

Terminal states of a task in a run: ``completed`` (executed or cached),
``failed``, ``skipped`` (an upstream task failed, or is waiting), ``waiting``
(a root input it reads is not set), or still ``pending`` when fail-fast stopped
the run. Pure: no I/O, no clocks.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from e3.base.paths import DatasetPath, format_keypath
from e3.dataflow.graph import Graph
from e3.model.runs import Counts


class State(StrEnum):
    """A task's state within one run."""

    PENDING = "pending"
    RUNNING = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    WAITING = "waiting"


@dataclass
class TaskRun:
    """What happened to one task in this run."""

    state: State = State.PENDING
    cached: bool = False
    reason: str | None = None
    stale: bool = False
    output_hash: str | None = None
    launches: int = 0


@dataclass
class Launch:
    """What the scheduler needs to run a task: its input hashes, in order."""

    index: int
    input_hashes: tuple[str, ...]


@dataclass
class Accepted:
    """A completion that was kept (``changed``: the output differs from before)."""

    index: int
    output_hash: str


@dataclass
class Plan:
    """State of one run over ``graph`` restricted to ``selected`` tasks."""

    graph: Graph
    values: dict[DatasetPath, str | None]
    selected: frozenset[int]
    keep_going: bool = False
    runs: dict[int, TaskRun] = field(default_factory=dict)
    failed_any: bool = False
    reexecuted: int = 0
    _candidates: set[int] = field(default_factory=set)
    _ready: set[int] = field(default_factory=set)
    _heap: list[int] = field(default_factory=list)
    _settled: list[int] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        graph: Graph,
        root_values: Mapping[DatasetPath, str | None],
        selected: Iterable[int] | None = None,
        *,
        keep_going: bool = False,
    ) -> Plan:
        """A plan over ``selected`` (default: every task) from a snapshot of the roots."""
        chosen = frozenset(range(len(graph.tasks)) if selected is None else selected)
        plan = cls(graph, dict(root_values), chosen, keep_going)
        plan.runs = {i: TaskRun() for i in sorted(chosen)}
        plan._candidates = set(chosen)
        return plan

    # ── queries ──────────────────────────────────────────────────────────
    def pop_ready(self) -> int | None:
        """The next task that may launch (topological order), or ``None``.

        Nothing is handed out after a failure unless ``keep_going``. The caller
        must :meth:`launch` the task it gets (or it is lost).
        """
        self._settle()
        if self.failed_any and not self.keep_going:
            return None
        while self._heap:
            i = heapq.heappop(self._heap)
            if i in self._ready:
                self._ready.discard(i)
                return i
        return None

    def launch(self, i: int) -> Launch:
        """Mark a ready task running; returns its input hashes from the snapshot."""
        self._ready.discard(i)
        run = self.runs[i]
        run.state = State.RUNNING
        run.stale = False
        run.launches += 1
        hashes = []
        for p in self.graph.tasks[i].inputs:
            h = self.values.get(p)
            assert h is not None, f"launching {self.graph.tasks[i].name} without {p}"
            hashes.append(h)
        return Launch(i, tuple(hashes))

    def drain_settled(self) -> list[int]:
        """Tasks that became ``waiting`` or ``skipped`` (by classification) since the last call."""
        self._settle()
        out, self._settled = self._settled, []
        return out

    def running(self) -> list[int]:
        """Tasks currently running."""
        return [i for i, r in self.runs.items() if r.state is State.RUNNING]

    def finished(self) -> bool:
        """Nothing runs and nothing more can start."""
        if any(r.state is State.RUNNING for r in self.runs.values()):
            return False
        self._settle()
        if self.failed_any and not self.keep_going:
            return True
        return not self._ready

    def counts(self) -> Counts:
        """Tallies of the task states."""
        c = Counts(total=len(self.runs), reexecuted=self.reexecuted)
        for r in self.runs.values():
            if r.state is State.COMPLETED:
                c.completed += 1
                if r.cached:
                    c.cached += 1
                else:
                    c.executed += 1
            elif r.state is State.FAILED:
                c.failed += 1
            elif r.state is State.SKIPPED:
                c.skipped += 1
            elif r.state is State.WAITING:
                c.waiting += 1
            elif r.state is State.RUNNING:
                c.running += 1
            else:
                c.pending += 1
        return c

    # ── transitions ──────────────────────────────────────────────────────
    def complete(self, i: int, output_hash: str, *, cached: bool = False) -> Accepted | None:
        """A task produced ``output_hash``.

        Returns ``None`` if the result is stale (an input changed while it ran)
        and the task must run again.
        """
        run = self.runs[i]
        if run.stale:
            run.state = State.PENDING
            run.stale = False
            self.reexecuted += 1
            self._candidates.add(i)
            return None
        run.state = State.COMPLETED
        run.cached = cached
        run.output_hash = output_hash
        self.values[self.graph.tasks[i].output] = output_hash
        self._candidates.update(self.graph.dependents[i])
        return Accepted(i, output_hash)

    def fail(self, i: int, reason: str) -> list[int]:
        """A task failed; returns the tasks skipped because of it."""
        run = self.runs[i]
        if run.stale:  # its inputs changed meanwhile: try again rather than fail
            run.state = State.PENDING
            run.stale = False
            self.reexecuted += 1
            self._candidates.add(i)
            return []
        run.state = State.FAILED
        run.reason = reason
        self.failed_any = True
        skipped = []
        name = self.graph.tasks[i].name
        for d in sorted(self.graph.downstream([i])):
            r = self.runs.get(d)
            if r is not None and r.state in (State.PENDING, State.WAITING):
                r.state = State.SKIPPED
                r.reason = f"upstream task '{name}' failed"
                skipped.append(d)
        return skipped

    def cancel_pending(self, reason: str) -> None:
        """Stop: every task not yet terminal keeps ``pending`` with a reason."""
        for r in self.runs.values():
            if r.state is State.PENDING:
                r.reason = reason

    def inputs_changed(self, changes: Mapping[DatasetPath, str | None]) -> list[int]:
        """Root inputs changed: move to a new snapshot. Returns the tasks reset or marked stale."""
        real = {p: h for p, h in changes.items() if self.values.get(p) != h}
        if not real:
            return []
        self.values.update(real)
        direct = {t for p in real for t in self.graph.readers.get(p, ())}
        affected = (direct | self.graph.downstream(direct)) & self.selected
        touched = []
        for t in sorted(affected):
            r = self.runs[t]
            if r.state is State.COMPLETED:
                r.state = State.PENDING
                r.cached = False
                self.reexecuted += 1
            elif r.state is State.RUNNING:
                r.stale = True
            elif r.state in (State.WAITING, State.SKIPPED) and not (r.reason or "").startswith(
                "upstream task"
            ):
                r.state = State.PENDING
            elif r.state is not State.PENDING:
                continue
            r.reason = None
            self._ready.discard(t)  # re-check: the change may have unset an input
            touched.append(t)
            self._candidates.add(t)
        return touched

    # ── internals ────────────────────────────────────────────────────────
    def _settle(self) -> None:
        """Classify candidate tasks: ready, waiting on an unset input, or skipped."""
        if not self._candidates:
            return
        queue = deque(sorted(self._candidates))
        self._candidates = set()
        while queue:
            i = queue.popleft()
            run = self.runs.get(i)
            if run is None or run.state is not State.PENDING or i in self._ready:
                continue
            verdict = self._classify(i)
            if verdict is None:
                continue
            if isinstance(verdict, str):
                self._ready.add(i)
                heapq.heappush(self._heap, i)
                continue
            state, reason = verdict
            run.state = state
            run.reason = reason
            self._settled.append(i)
            queue.extend(d for d in self.graph.dependents[i] if d in self.runs)

    def _classify(self, i: int) -> str | tuple[State, str] | None:
        node = self.graph.tasks[i]
        blocked = False
        for p in node.inputs:
            j = self.graph.producer.get(p)
            if j is None:
                if self.values.get(p) is None:
                    return State.WAITING, f"input {format_keypath(p)} is not set"
                continue
            dep = self.runs.get(j)
            if dep is None:  # upstream outside the selection: use the current value
                if self.values.get(p) is None:
                    return State.WAITING, f"input {format_keypath(p)} is not set"
                continue
            if dep.state in (State.WAITING, State.SKIPPED):
                return State.SKIPPED, f"waiting for task '{self.graph.tasks[j].name}'"
            if dep.state is State.FAILED:
                return State.SKIPPED, f"upstream task '{self.graph.tasks[j].name}' failed"
            if dep.state is not State.COMPLETED:
                blocked = True
        return None if blocked else "ready"
