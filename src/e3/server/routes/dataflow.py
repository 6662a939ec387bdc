"""Dataflow runs: start, follow (long-polled events), cancel, history; task logs.

Runs are addressed by id (``/runs/<id>``) or, as in the reference, as the
latest run of a workspace (``…/dataflow/execution``, ``?run=<id>`` to pin one).
A run started by another process on the same repository is followed too.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import Response

from e3.codec.types import ArrayType
from e3.errors import ConflictError, E3Error, ExecutionNotFound, UsageError
from e3.model.bodies import DataflowProgress, JobStarted
from e3.model.protocol import Run
from e3.model.results import LogChunk, TaskLogSummary
from e3.model.runs import StartOptions, start_options
from e3.records import dataflow as run_record
from e3.server.http import (
    Endpoint,
    beast2_reply,
    blocking,
    east_reply,
    param,
    query_int,
    query_wait,
    typed_body,
)
from e3.server.state import server_of

_WS = "/api/repos/{repo}/workspaces/{ws}"
_RUN = "/api/repos/{repo}/runs/{run}"
#: How often a log long poll looks at the file again.
_LOG_POLL = 0.1
#: Most tasks one run started over HTTP may run at once.
MAX_CONCURRENCY = 64


async def start_dataflow(request: Request) -> Response:
    """Start a run; a refusal (workspace locked, unknown task) is the reply, not a later error."""
    body: StartOptions = await typed_body(request, StartOptions)
    cluster = server_of(request).config.cluster
    if body.cluster is not None and body.cluster != cluster:
        raise UsageError(
            "this server decides where tasks run (e3 serve --cluster); "
            f"a client cannot choose the cluster {body.cluster[:60]!r}"
        )
    options = start_options(
        filter=body.filters,
        concurrency=min(max(1, body.concurrency), MAX_CONCURRENCY),
        force=body.force,
        keep_going=body.keep_going,
        timeout=body.timeout,
        isolation=body.isolation,
        log_limit=body.log_limit,
        cluster=cluster,
    )
    repo = server_of(request).repo(request)
    run = await blocking(repo.start_with, param(request, "ws"), options)
    return beast2_reply(JobStarted(run.id), JobStarted, 202)


async def _workspace_run(request: Request) -> Run:
    """``?run=<id>``, or the workspace's latest run."""
    repo = server_of(request).repo(request)
    ws = param(request, "ws")
    wanted = request.query_params.get("run")
    if wanted is not None:
        run: Run = await blocking(repo.run, wanted)
        if run.workspace != ws:
            raise ExecutionNotFound(f"run {wanted[:40]!r} is not a run of workspace '{ws}'")
        return run
    history = await blocking(repo.runs, ws)
    if not history:
        raise ExecutionNotFound(f"no dataflow has run in workspace '{ws}'")
    latest: Run = await blocking(repo.run, history[-1].run_id)
    return latest


async def _progress(request: Request, run: Run) -> Response:
    """A page of a run's events from ``?offset`` (long-polled with ``?wait``)."""
    offset = query_int(request, "offset", 0)
    limit = max(1, min(query_int(request, "limit", 1000), 10_000))
    events, running = await run.events_since_async(offset, wait=query_wait(request))
    total = offset + len(events)
    page = events[:limit]
    if running:
        return beast2_reply(DataflowProgress("running", page, total), DataflowProgress)
    try:
        outcome = await run.wait_async()
    except E3Error as exc:
        progress = DataflowProgress("error", page, total, None, exc.spec.code, exc.message)
    else:
        progress = DataflowProgress(outcome.status, page, total, outcome)
    return beast2_reply(progress, DataflowProgress)


async def workspace_progress(request: Request) -> Response:
    """Events of the workspace's latest run (or ``?run=<id>``)."""
    return await _progress(request, await _workspace_run(request))


async def run_progress(request: Request) -> Response:
    """Events of a run by id."""
    repo = server_of(request).repo(request)
    return await _progress(request, await blocking(repo.run, param(request, "run")))


async def workspace_cancel(request: Request) -> Response:
    """Cancel the workspace's running dataflow (or ``?run=<id>``); kills its tasks."""
    run = await _workspace_run(request)
    return await _cancel(run)


async def run_cancel(request: Request) -> Response:
    """Cancel a run by id."""
    repo = server_of(request).repo(request)
    return await _cancel(await blocking(repo.run, param(request, "run")))


async def _cancel(run: Run) -> Response:
    record = await blocking(run.status)
    if record.status != "running":
        raise ConflictError(f"run {run.id} is not running ({record.status})")
    await blocking(run.cancel)
    return beast2_reply(None, type(None))


async def run_record_reply(request: Request) -> Response:
    """A run's record."""
    repo = server_of(request).repo(request)
    run = await blocking(repo.run, param(request, "run"))
    record = await blocking(run.status)
    return east_reply(run_record.to_east(record), run_record.DataflowRunType)


async def list_runs(request: Request) -> Response:
    """Past and current runs of a workspace (``?last=N``: the newest N only; ``?brief=1``)."""
    repo = server_of(request).repo(request)
    last = query_int(request, "last", -1)
    brief = query_int(request, "brief", 0) == 1
    runs = await blocking(
        repo.runs, param(request, "ws"), last=None if last < 0 else last, brief=brief
    )
    return east_reply([run_record.to_east(r) for r in runs], ArrayType(run_record.DataflowRunType))


async def list_logs(request: Request) -> Response:
    """Every task with its latest state and number of executions."""
    repo = server_of(request).repo(request)
    return beast2_reply(await blocking(repo.task_logs, param(request, "ws")), list[TaskLogSummary])


async def read_log(request: Request) -> Response:
    """A slice of a task's log: ``?stream=stdout|stderr&offset&limit`` (``&wait`` to long-poll)."""
    repo = server_of(request).repo(request)
    stream = request.query_params.get("stream", "stdout")
    if stream not in ("stdout", "stderr"):
        raise UsageError("stream must be stdout or stderr")
    offset = query_int(request, "offset", 0)
    limit = max(1, min(query_int(request, "limit", 64 << 10), 1 << 20))
    execution = request.query_params.get("execution")
    ws, task = param(request, "ws"), param(request, "task")
    deadline = time.monotonic() + query_wait(request)
    while True:
        chunk: LogChunk = await blocking(repo.read_log, ws, task, stream, offset, limit, execution)
        if chunk.data or chunk.complete or time.monotonic() >= deadline:
            return beast2_reply(chunk, LogChunk)
        await asyncio.sleep(_LOG_POLL)  # long poll: the file is checked again shortly


ENDPOINTS = [
    Endpoint(
        "POST",
        f"{_WS}/dataflow",
        start_dataflow,
        "Start a dataflow run",
        "write",
        body=StartOptions,
        reply=JobStarted,
    ),
    Endpoint(
        "GET",
        f"{_WS}/dataflow/execution",
        workspace_progress,
        "Events of the latest (or ?run=) run from ?offset (long poll with ?wait)",
        reply=DataflowProgress,
    ),
    Endpoint(
        "POST",
        f"{_WS}/dataflow/cancel",
        workspace_cancel,
        "Cancel the running dataflow (kills its tasks)",
        "write",
    ),
    Endpoint(
        "GET",
        f"{_WS}/dataflow/logs",
        list_logs,
        "Every task with its latest state and number of executions",
        reply=list[TaskLogSummary],
    ),
    Endpoint(
        "GET",
        f"{_WS}/dataflow/logs/{{task}}",
        read_log,
        "A slice of a task's log: ?stream=stdout|stderr&offset&limit (&wait to long-poll)",
        reply=LogChunk,
    ),
    Endpoint("GET", f"{_WS}/dataflow/runs", list_runs, "Past runs"),
    Endpoint("GET", _RUN, run_record_reply, "A run's record"),
    Endpoint(
        "GET",
        f"{_RUN}/events",
        run_progress,
        "A run's events from ?offset (long poll with ?wait)",
        reply=DataflowProgress,
    ),
    Endpoint("POST", f"{_RUN}/cancel", run_cancel, "Cancel a run (kills its tasks)", "write"),
]
