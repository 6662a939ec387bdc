"""Run handles of the local porcelain: runs of this process's engine, and recorded runs.

:class:`LocalRun` is a run the engine of this process executes: its events are
in memory and its end is a future. :class:`RecordedRun` is any other run of a
local repository (started by another process, or over, or interrupted): it is
followed through its record and event log on disk (:mod:`e3.core.runs`) and
cancelled through its cancel file. Both satisfy :class:`e3.model.protocol.Run`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from abc import ABC, abstractmethod

from e3.api.notify import Notifier
from e3.core import runs
from e3.errors import ExecutionNotFound, WaitTimedOut
from e3.model.events import Event, outcome_from_events
from e3.model.protocol import RunEvents
from e3.model.runs import RunOutcome
from e3.records.dataflow import DataflowRun
from e3.store.repository import RepoStore

#: How often a recorded run's log and record are read again while followed.
POLL_INTERVAL = 0.1


class RunHandle(ABC):
    """What both kinds of local run share."""

    def __init__(self, store: RepoStore, ws: str, run_id: str) -> None:
        self.store = store
        self._ws = ws
        self._id = run_id

    @property
    def id(self) -> str:
        """The run's id."""
        return self._id

    @property
    def workspace(self) -> str:
        """Its workspace."""
        return self._ws

    def status(self) -> DataflowRun:
        """Its record now (``interrupted`` if its engine died)."""
        run = runs.find_run(self.store, self._id)
        if run is None:
            raise ExecutionNotFound(f"run {self._id} not found", run=self._id)
        return run

    def events(self, offset: int = 0) -> RunEvents:
        """Its events from ``offset`` on, until it ends."""
        return RunEvents(self, offset)

    @abstractmethod
    def events_since(self, offset: int, *, wait: float = 0.0) -> tuple[list[Event], bool]:
        """Events from ``offset`` and whether the run goes on (see the protocol)."""

    @abstractmethod
    async def events_since_async(
        self, offset: int, *, wait: float = 0.0
    ) -> tuple[list[Event], bool]:
        """:meth:`events_since` for coroutines."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> RunOutcome:
        """The outcome, once the run is over."""

    @abstractmethod
    async def wait_async(self, timeout: float | None = None) -> RunOutcome:
        """:meth:`wait` for coroutines."""

    @abstractmethod
    def cancel(self) -> None:
        """Ask the run to stop."""


class LocalRun(RunHandle):
    """A run executed by this process's engine."""

    def __init__(self, store: RepoStore, ws: str, run_id: str) -> None:
        super().__init__(store, ws, run_id)
        self._events: list[Event] = []
        self._changed = Notifier()
        self.future: concurrent.futures.Future[RunOutcome] = concurrent.futures.Future()
        self._cancel: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ── engine side ──────────────────────────────────────────────────────
    def attach(self, loop: asyncio.AbstractEventLoop, cancel: asyncio.Event) -> None:
        """Called by the engine: where the run executes and how to stop it."""
        self._loop, self._cancel = loop, cancel

    def add_event(self, event: Event) -> None:
        """Called by the engine for every event."""
        self._events.append(event)
        self._changed.notify()

    def finish(self, outcome: RunOutcome | None, error: BaseException | None) -> None:
        """Called by the engine once the run is over."""
        if error is not None:
            self.future.set_exception(error)
        else:
            assert outcome is not None
            self.future.set_result(outcome)
        self._changed.notify()

    # ── caller side ──────────────────────────────────────────────────────
    @property
    def done(self) -> bool:
        """Whether the run is over."""
        return self.future.done()

    def events_since(self, offset: int, *, wait: float = 0.0) -> tuple[list[Event], bool]:
        """Events from ``offset`` (waiting up to ``wait`` s) and whether the run goes on."""
        self._changed.wait(lambda: len(self._events) > offset or self.done, wait)
        return self._events[offset:], not self.done

    async def events_since_async(
        self, offset: int, *, wait: float = 0.0
    ) -> tuple[list[Event], bool]:
        """:meth:`events_since` for coroutines."""
        await self._changed.wait_async(lambda: len(self._events) > offset or self.done, wait)
        return self._events[offset:], not self.done

    def wait(self, timeout: float | None = None) -> RunOutcome:
        """The outcome, once the run is over."""
        try:
            return self.future.result(timeout)
        except TimeoutError:
            raise WaitTimedOut(f"run {self.id} is still going after {timeout:g} s") from None

    async def wait_async(self, timeout: float | None = None) -> RunOutcome:
        """:meth:`wait` for coroutines."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self.future), timeout)
        except TimeoutError:
            raise WaitTimedOut(f"run {self.id} is still going after {timeout:g} s") from None

    def cancel(self) -> None:
        """Stop the run: its tasks are killed, it is recorded as cancelled."""
        if self._loop is not None and self._cancel is not None and not self.done:
            self._loop.call_soon_threadsafe(self._cancel.set)


class RecordedRun(RunHandle):
    """A run of a local repository that another process executes (or executed)."""

    def __init__(self, store: RepoStore, record: DataflowRun) -> None:
        super().__init__(store, record.workspace, record.run_id)
        self._record = record
        self._reader = runs.EventReader(runs.events_path(store, record.workspace, record.run_id))
        self._events: list[Event] = []

    def _refresh(self) -> bool:
        """Read new events and the record; returns whether the run goes on."""
        self._events.extend(self._reader.poll())
        if self._record.status == "running":
            now = runs.find_run(self.store, self._id, brief=True)
            if now is None:
                raise ExecutionNotFound(f"run {self._id} not found", run=self._id)
            self._record = now
            if self._record.status != "running":
                self._events.extend(self._reader.poll())  # its last events came before
        return self._record.status == "running"

    def events_since(self, offset: int, *, wait: float = 0.0) -> tuple[list[Event], bool]:
        """Events from ``offset`` (polling the log for up to ``wait`` s)."""
        deadline = time.monotonic() + wait
        while True:
            running = self._refresh()
            if len(self._events) > offset or not running or time.monotonic() >= deadline:
                return self._events[offset:], running
            time.sleep(POLL_INTERVAL)

    async def events_since_async(
        self, offset: int, *, wait: float = 0.0
    ) -> tuple[list[Event], bool]:
        """:meth:`events_since` for coroutines."""
        deadline = time.monotonic() + wait
        while True:
            running = await asyncio.to_thread(self._refresh)
            if len(self._events) > offset or not running or time.monotonic() >= deadline:
                return self._events[offset:], running
            await asyncio.sleep(POLL_INTERVAL)

    def _outcome(self) -> RunOutcome:
        status = self._record.status
        assert status != "running"
        duration = 0.0
        if self._record.completed_at is not None:
            duration = (self._record.completed_at - self._record.started_at).total_seconds()
        return outcome_from_events(self.id, status, self._events, duration)

    def wait(self, timeout: float | None = None) -> RunOutcome:
        """The outcome, once the run is over (read from its record and log)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._refresh():
            time.sleep(self._pause(deadline, timeout))
        return self._outcome()

    async def wait_async(self, timeout: float | None = None) -> RunOutcome:
        """:meth:`wait` for coroutines."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while await asyncio.to_thread(self._refresh):
            await asyncio.sleep(self._pause(deadline, timeout))
        return self._outcome()

    def _pause(self, deadline: float | None, timeout: float | None) -> float:
        """How long to sleep before looking again: a poll, never past ``deadline``."""
        if deadline is None:
            return POLL_INTERVAL
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimedOut(f"run {self.id} is still going after {timeout:g} s")
        return min(POLL_INTERVAL, left)

    def cancel(self) -> None:
        """Ask the engine running it, in whichever process, to stop it."""
        if self._refresh():
            runs.request_cancel(self.store, self.workspace, self.id)
