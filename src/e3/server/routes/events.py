"""Live data of the web view: a run's events as server-sent events, and the run history.

A run's events stream as ``text/event-stream`` (one ``e3`` message per event,
``id`` its position, then one ``end`` message with the outcome) from the
porcelain's :meth:`~e3.model.protocol.Run.events_since_async`, so a run this
server executes arrives as it happens and one that another process executes
(``e3 start`` on the same repository) arrives from its event log.

The page reads the stream with ``fetch`` and a stream reader rather than
``EventSource``, because ``EventSource`` cannot send an ``Authorization``
header: the bearer token then travels as it does on every other request, never
in a URL (where it would end up in proxy logs and browser history). After a
broken connection the page asks again from the last position it has.

The history is a long poll: ``?known=<id>:<status>`` names the newest run the
page knows, and the reply comes when that changes (a run starts, here or in
another process, or ends) or after ``?wait`` seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from e3.errors import E3Error
from e3.model.protocol import Repository, Run
from e3.records.dataflow import DataflowRun
from e3.server import ui_data
from e3.server.http import Endpoint, blocking, param, query_int, query_wait
from e3.server.routes.ui import JSON, UI_API, json_errors, json_reply
from e3.server.state import server_of

#: Longest wait for a run's next event before a keep-alive comment.
KEEP_ALIVE = 15.0
#: How often the history long poll reads the history again.
HISTORY_POLL = 0.25
#: Runs of the history sent to the page.
HISTORY_LENGTH = 50


def _message(kind: str, data: object, seq: int | None = None) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _follow(run: Run, offset: int) -> AsyncIterator[bytes]:
    """The run's events from ``offset`` until its end, then its outcome."""
    yield b"retry: 1000\n\n"
    while True:
        events, running = await run.events_since_async(offset, wait=KEEP_ALIVE)
        if events:
            yield b"".join(
                _message("e3", e.to_json(), offset + i + 1) for i, e in enumerate(events)
            )
            offset += len(events)
        elif running:
            yield b": keep-alive\n\n"
        if not running and not events:
            break
    try:
        outcome = await run.wait_async()
    except E3Error as exc:
        yield _message("end", {"id": run.id, "status": "error", "error": exc.message})
    else:
        yield _message("end", ui_data.outcome_view(outcome))


@json_errors
async def run_events(request: Request) -> Response:
    """A run's events as server-sent events, from ``?offset`` until the run ends."""
    repo = server_of(request).repo(request)
    run: Run = await blocking(repo.run, param(request, "run"))
    return StreamingResponse(
        _follow(run, query_int(request, "offset", 0)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _newest(runs: list[dict[str, object]]) -> str:
    return f"{runs[0]['id']}:{runs[0]['status']}" if runs else ""


@json_errors
async def run_history(request: Request) -> Response:
    """The newest runs first; with ``?known=<id>:<status>&wait=S``, once that changes."""
    repo = server_of(request).repo(request)
    ws = param(request, "ws")
    known = request.query_params.get("known")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + query_wait(request)
    while True:
        # Each poll looks at the newest run only (one brief record: a page left open
        # on a workspace of 10,000 tasks and nine runs had the server decode all of
        # them, 1.8 s, four times a second); the history is read when it is sent.
        newest = [ui_data.run_view(r) for r in await blocking(_history, repo, ws, 1)]
        if known is None or _newest(newest) != known or loop.time() >= deadline:
            records = await blocking(_history, repo, ws, HISTORY_LENGTH)
            return json_reply([ui_data.run_view(r) for r in reversed(records)])
        if await request.is_disconnected():  # the page went away: stop polling for it
            return json_reply(newest)
        await asyncio.sleep(HISTORY_POLL)


def _history(repo: Repository, ws: str, last: int) -> list[DataflowRun]:
    return repo.runs(ws, last=last, brief=True)


ENDPOINTS = [
    Endpoint(
        "GET",
        f"{UI_API}/{{repo}}/workspaces/{{ws}}/runs",
        run_history,
        "Web view: the run history (?known&wait to long-poll for a change)",
        media=JSON,
    ),
    Endpoint(
        "GET",
        f"{UI_API}/{{repo}}/runs/{{run}}/events",
        run_events,
        "Web view: a run's events as server-sent events from ?offset",
        media="text/event-stream",
    ),
]
