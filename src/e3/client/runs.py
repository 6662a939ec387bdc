"""A dataflow run on an e3 server, behind the same :class:`~e3.model.protocol.Run` shape.

Events are long-polled (``?wait``): the server answers as soon as there is
something new, so following a remote run costs one request per batch of events,
not a request per poll interval.
"""

from __future__ import annotations

import asyncio
import time

from e3.client.http import Http, quote
from e3.errors import DataflowAborted, RemoteError, WaitTimedOut, error_for_code
from e3.model.bodies import DataflowProgress
from e3.model.events import Event
from e3.model.protocol import RunEvents
from e3.model.runs import RunOutcome
from e3.records import dataflow as run_record
from e3.records.dataflow import DataflowRun

#: Longest long poll asked of the server (it caps it too).
LONG_POLL = 20.0


class RemoteRun:
    """One run on one server, found by id."""

    def __init__(self, http: Http, repo_base: str, run_id: str, workspace: str = "") -> None:
        self.http = http
        self.base = f"{repo_base}/runs/{quote(run_id)}"
        self._id = run_id
        self._ws = workspace

    @property
    def id(self) -> str:
        """The run's id."""
        return self._id

    @property
    def workspace(self) -> str:
        """Its workspace."""
        if not self._ws:
            self._ws = self.status().workspace
        return self._ws

    def status(self) -> DataflowRun:
        """Its record on the server."""
        value = self.http.call_east("GET", self.base, run_record.DataflowRunType)
        return run_record.from_east(value)

    def events(self, offset: int = 0) -> RunEvents:
        """Its events from ``offset`` on, until it ends."""
        return RunEvents(self, offset)

    def _page(self, offset: int, wait: float) -> DataflowProgress:
        page: DataflowProgress = self.http.call(
            "GET",
            f"{self.base}/events",
            DataflowProgress,
            params={"offset": str(offset), "wait": f"{min(wait, LONG_POLL):g}"},
        )
        return page

    def events_since(self, offset: int, *, wait: float = 0.0) -> tuple[list[Event], bool]:
        """Events from ``offset`` (long-polled for up to ``wait`` s) and whether it goes on."""
        page = self._page(offset, wait)
        return page.events, page.status == "running"

    async def events_since_async(
        self, offset: int, *, wait: float = 0.0
    ) -> tuple[list[Event], bool]:
        """:meth:`events_since` in a worker thread."""
        return await asyncio.to_thread(self.events_since, offset, wait=wait)

    def wait(self, timeout: float | None = None) -> RunOutcome:
        """The outcome, once the run is over on the server."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = LONG_POLL if deadline is None else max(0.0, deadline - time.monotonic())
            page = self._page(1 << 62, left)  # no events wanted: only its end
            if page.status != "running":
                return outcome_of(page)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimedOut(f"run {self.id} is still going after {timeout:g} s")

    async def wait_async(self, timeout: float | None = None) -> RunOutcome:
        """:meth:`wait` in a worker thread."""
        return await asyncio.to_thread(self.wait, timeout)

    def cancel(self) -> None:
        """Ask the server to stop the run (it kills the running tasks)."""
        self.http.call("POST", f"{self.base}/cancel", type(None))


def outcome_of(page: DataflowProgress) -> RunOutcome:
    """The outcome a finished run's progress page carries, or the error it ended with."""
    if page.result is not None:
        return page.result
    cls = error_for_code(page.error_code or "internal")
    if cls is DataflowAborted:
        raise DataflowAborted(page.error_message or "the dataflow was cancelled")
    if page.error_code is None and page.error_message is None:
        raise RemoteError("the server reported the run over without a result")
    raise cls(page.error_message or "the dataflow failed")
