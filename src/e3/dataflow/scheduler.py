"""The scheduler: runs a workspace's dataflow with the plan, the cache and the runners.

A run is prepared, then executed:

* :func:`prepare_run` locks the workspace (shared) and its dataflow (exclusive),
  reads the package and the task graph, checks the filters, closes the records of
  runs whose engine died, and writes the new run's ``running`` record. Anything
  that would refuse the run (a lock held, an unknown task) fails here, before the
  run exists.
* :func:`execute_run` repeatedly takes ready tasks from the plan; for each, it
  looks up the execution cache by (task hash, hash of the ordered input hashes);
  a hit completes the task at once, a miss runs it (:mod:`e3.dataflow.execute`),
  at most ``concurrency`` at a time. Each output is stored canonically, its cache
  record and output ref published in batches (:mod:`e3.dataflow.publish`), and
  the plan may release downstream tasks. After every turn it notices inputs set
  meanwhile (``e3 set``) and lets the plan re-run what depends on them. At the end
  it writes the run record and, if everything completed, the workspace's
  ``currentRunId``; the locks are released whatever happens.

Every event goes to the caller's callback and to the run's event log on disk
(:mod:`e3.core.runs`), which other processes follow; a cancel request comes
from the caller's ``asyncio.Event`` or from the run's cancel file.

A result identical to the previous one leaves downstream input hashes
unchanged, so downstream tasks hit the cache (early cutoff). The same
(task, inputs) wanted by two runs at once executes once (single-flight).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from e3.core import runs
from e3.dataflow.drive import RunLoop
from e3.dataflow.prepare import PreparedRun, prepare_run
from e3.model.events import Event
from e3.model.runs import RunOutcome, StartOptions
from e3.runners.base import RunnerRegistry
from e3.runners.registry import default_registry
from e3.store.repository import RepoStore


class Emitter:
    """Numbers and timestamps a run's events and hands them to every sink."""

    def __init__(self, sinks: list[Callable[[Event], None]], started: float) -> None:
        self.sinks = sinks
        self.seq = 0
        self.t0 = started

    def __call__(self, kind: str, **fields: object) -> None:
        """Emit one event of ``kind``."""
        self.seq += 1
        event = Event(kind, self.seq, time.monotonic() - self.t0, **fields)  # type: ignore[arg-type]
        for sink in self.sinks:
            sink(event)


async def execute_run(
    prepared: PreparedRun,
    *,
    registry: RunnerRegistry,
    on_event: Callable[[Event], None] | None = None,
    cancel: asyncio.Event | None = None,
) -> RunOutcome:
    """Execute a prepared run to its end; a cancelled run ends with status ``cancelled``.

    The run's locks are released when this returns or raises.
    """
    repo, ws, run_id = prepared.repo, prepared.ws, prepared.run_id
    try:
        log = runs.EventWriter(runs.events_path(repo, ws, run_id))
        try:
            sinks: list[Callable[[Event], None]] = [log]
            if on_event is not None:
                sinks.append(on_event)
            emit = Emitter(sinks, time.monotonic())
            loop = RunLoop(prepared, registry, emit, log.flush, cancel)
            return await loop.run()
        finally:
            log.close()
    finally:
        runs.clear_cancel(repo, ws, run_id)
        prepared.release()


async def run_dataflow(
    repo: RepoStore,
    ws: str,
    options: StartOptions | None = None,
    *,
    on_event: Callable[[Event], None] | None = None,
    registry: RunnerRegistry | None = None,
    cancel: asyncio.Event | None = None,
) -> RunOutcome:
    """Prepare and execute a run (with the default runners unless ``registry`` is given)."""
    options = options or StartOptions()
    prepared = prepare_run(repo, ws, options)
    reg = registry or default_registry(isolation=options.isolation, max_workers=options.concurrency)
    try:
        return await execute_run(prepared, registry=reg, on_event=on_event, cancel=cancel)
    finally:
        if registry is None:
            await reg.close()


def run_sync(
    repo: RepoStore,
    ws: str,
    options: StartOptions | None = None,
    *,
    on_event: Callable[[Event], None] | None = None,
) -> RunOutcome:
    """:func:`run_dataflow` from synchronous code.

    For tests and tools; programs use the porcelain (``e3.open(path).start(ws)``).
    """
    return asyncio.run(run_dataflow(repo, ws, options, on_event=on_event))
