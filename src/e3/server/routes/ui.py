"""The web view: its page (``/ui/``, public: it holds no data) and the JSON routes it reads.

The page is three static files shipped in the wheel (``e3/server/static/ui``),
plain HTML, CSS and JavaScript with no build step and no third-party code. Its
data routes are ordinary :class:`~e3.server.http.Endpoint` s under ``/ui/api``:
the application wraps them like every API route, so they authenticate (and
authorize) exactly as the API does, and they are listed in the OpenAPI
document, where the authentication tests find them. They answer JSON because
the page has no Beast2 decoder; errors are JSON ``{"error": {code, message}}``
with the API's HTTP status.

Writes (start, cancel) require ``Content-Type: application/json``: a browser
sends that across origins only after a CORS preflight, which the server does
not grant unless started with ``--cors``, so another web site cannot start runs
on a server that needs no login (one on 127.0.0.1, say).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from e3.errors import (
    ConflictError,
    E3Error,
    ExecutionNotFound,
    TaskNotFound,
    UnsupportedMediaType,
    UsageError,
)
from e3.model.events import Event
from e3.model.protocol import Repository, running_run_id
from e3.model.results import LogChunk
from e3.server import ui_data
from e3.server.http import (
    Endpoint,
    blocking,
    dataset_path,
    param,
    query_int,
    query_wait,
    raw_segments,
    read_body,
)
from e3.server.state import server_of

JSON = "application/json"
UI_API = "/ui/api/repos"
_WS = f"{UI_API}/{{repo}}/workspaces/{{ws}}"
#: How often a log long poll looks at the file again.
_LOG_POLL = 0.1
#: Runs of the history a task's last event is looked for in.
_RECENT_RUNS = 5
#: The page's files: name → media type.
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
#: The page loads only its own files and talks only to its own server.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def json_reply(data: Any, status: int = 200) -> Response:
    """A JSON reply that no cache keeps (it is repository data)."""
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


def json_errors(fn: Callable[[Request], Awaitable[Response]]) -> Callable[..., Any]:
    """Errors of a UI handler as JSON (the page reads them; it cannot decode Beast2)."""

    async def handle(request: Request) -> Response:
        try:
            return await fn(request)
        except E3Error as exc:
            body = {"error": {"code": exc.spec.code, "message": exc.message}}
            return json_reply(body, exc.spec.http_status)

    handle.__doc__ = fn.__doc__
    return handle


async def json_body(request: Request) -> dict[str, Any]:
    """A JSON object body (required to be declared JSON: see the module docstring)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != JSON:
        raise UnsupportedMediaType(f"expected Content-Type {JSON}")
    data = await read_body(request, 64 << 10)
    try:
        body = json.loads(data or b"{}")
    except ValueError as exc:
        raise UsageError("request body is not JSON") from exc
    if not isinstance(body, dict):
        raise UsageError("request body must be a JSON object")
    return body


def _repo(request: Request) -> Repository:
    repo: Repository = server_of(request).repo(request)
    return repo


# ── reads ───────────────────────────────────────────────────────────────────


@json_errors
async def list_repos(request: Request) -> Response:
    """Names of the served repositories."""
    return json_reply(await blocking(server_of(request).repos.names))


@json_errors
async def list_workspaces(request: Request) -> Response:
    """The repository's workspaces and what is deployed in them."""
    found = await blocking(_repo(request).workspace_list)
    return json_reply(
        [
            {
                "name": w.name,
                "deployed": w.deployed,
                "package": f"{w.package_name}@{w.package_version}" if w.deployed else None,
            }
            for w in found
        ]
    )


@json_errors
async def graph(request: Request) -> Response:
    """The dataflow: tasks and datasets as nodes, dependencies as edges, laid out."""
    repo, ws = _repo(request), param(request, "ws")
    info = await blocking(repo.workspace_get, ws)
    body = ui_data.GRAPHS.get(info.package_hash)
    if body is None:
        body = await blocking(ui_data.encoded_graph, lambda: repo.task_list(ws))
        ui_data.GRAPHS.put(info.package_hash, body)
    return Response(body, media_type=JSON, headers={"Cache-Control": "no-store"})


@json_errors
async def status(request: Request) -> Response:
    """Every task's and dataset's state now."""
    st = await blocking(_repo(request).workspace_status, param(request, "ws"))
    return json_reply(ui_data.status_view(st))


def _last_event(repo: Repository, ws: str, task: str) -> tuple[str, Event] | None:
    """The task's newest event among the workspace's recent runs."""
    for record in reversed(repo.runs(ws, last=_RECENT_RUNS, brief=True)):
        events, _ = repo.run(record.run_id).events_since(0)
        found = ui_data.last_task_event(events, task)
        if found is not None:
            return record.run_id, found
    return None


def _task_panel(repo: Repository, ws: str, task: str) -> dict[str, Any]:
    info = next((t for t in repo.task_list(ws) if t.name == task), None)
    if info is None:
        raise TaskNotFound(f"no task '{task[:200]}' in workspace '{ws}'", task=task[:200])
    st = repo.workspace_status(ws, tasks=[task])
    try:
        execution = repo.task_execution(ws, task)
    except ExecutionNotFound:
        execution = None
    return ui_data.task_view(info, st, execution, _last_event(repo, ws, task))


@json_errors
async def task_panel(request: Request) -> Response:
    """A task: state, inputs and output, its execution and how its last run of it went."""
    view = await blocking(_task_panel, _repo(request), param(request, "ws"), param(request, "task"))
    return json_reply(view)


@json_errors
async def task_log(request: Request) -> Response:
    """A slice of a task's log as text: ``?stream&offset&limit`` (``&wait`` to long-poll)."""
    repo = _repo(request)
    stream = request.query_params.get("stream", "stdout")
    if stream not in ("stdout", "stderr"):
        raise UsageError("stream must be stdout or stderr")
    offset = query_int(request, "offset", 0)
    limit = max(1, min(query_int(request, "limit", 64 << 10), 1 << 20))
    execution = request.query_params.get("execution") or None
    ws, task = param(request, "ws"), param(request, "task")
    deadline = time.monotonic() + query_wait(request)
    while True:
        chunk: LogChunk = await blocking(repo.read_log, ws, task, stream, offset, limit, execution)
        if (
            chunk.data
            or chunk.complete
            or time.monotonic() >= deadline
            or await request.is_disconnected()
        ):
            view = ui_data.log_view(chunk.data, offset, chunk.total_size, chunk.complete)
            return json_reply(view)
        await asyncio.sleep(_LOG_POLL)


@json_errors
async def value_preview(request: Request) -> Response:
    """A page of a dataset's value as East text: ``?offset&limit`` in characters."""
    repo = _repo(request)
    path = dataset_path(raw_segments(request, 7))
    if not path:
        raise UsageError("no dataset path")
    offset = query_int(request, "offset", 0)
    limit = max(1, min(query_int(request, "limit", ui_data.PAGE_CHARS), ui_data.MAX_PAGE_CHARS))
    east_type, data = await blocking(repo.dataset_get, param(request, "ws"), path)
    return json_reply(await blocking(ui_data.preview_view, east_type, data, offset, limit))


# ── writes ──────────────────────────────────────────────────────────────────


@json_errors
async def start(request: Request) -> Response:
    """Start the dataflow (``{"force": bool}``); the run's id, to follow its events."""
    repo = _repo(request)
    body = await json_body(request)
    force = bool(body.get("force", False))
    run = await blocking(lambda: repo.start(param(request, "ws"), force=force))
    return json_reply({"run": run.id}, 202)


@json_errors
async def cancel(request: Request) -> Response:
    """Cancel the workspace's running dataflow."""
    repo, ws = _repo(request), param(request, "ws")
    await json_body(request)
    run_id = await blocking(running_run_id, repo, ws)
    if run_id is None:
        raise ConflictError(f"no dataflow is running in workspace '{ws}'")
    run = await blocking(repo.run, run_id)
    await blocking(run.cancel)
    return json_reply({"run": run.id})


ENDPOINTS = [
    Endpoint("GET", UI_API, list_repos, "Web view: repositories", media=JSON),
    Endpoint(
        "GET", f"{UI_API}/{{repo}}/workspaces", list_workspaces, "Web view: workspaces", media=JSON
    ),
    Endpoint("GET", f"{_WS}/graph", graph, "Web view: the dataflow, laid out", media=JSON),
    Endpoint("GET", f"{_WS}/status", status, "Web view: task and dataset states", media=JSON),
    Endpoint("GET", f"{_WS}/tasks/{{task}}", task_panel, "Web view: one task", media=JSON),
    Endpoint("GET", f"{_WS}/tasks/{{task}}/log", task_log, "Web view: a task's log", media=JSON),
    Endpoint(
        "GET",
        f"{_WS}/values/{{path:path}}",
        value_preview,
        "Web view: a page of a dataset's value as East text",
        media=JSON,
    ),
    Endpoint("POST", f"{_WS}/start", start, "Web view: start the dataflow", "write", media=JSON),
    Endpoint(
        "POST",
        f"{_WS}/cancel",
        cancel,
        "Web view: cancel the running dataflow",
        "write",
        media=JSON,
    ),
]


# ── the page ────────────────────────────────────────────────────────────────


def _static(name: str) -> bytes:
    return (resources.files("e3.server") / "static" / "ui" / name).read_bytes()


async def page_file(request: Request) -> Response:
    """One of the page's files (no data: served without authentication)."""
    name = request.path_params.get("name", "index.html")
    if name not in STATIC:
        return Response(b"not found", status_code=404, media_type="text/plain")
    return Response(await blocking(_static, name), media_type=STATIC[name], headers=_PAGE_HEADERS)


async def to_page(request: Request) -> Response:
    """``/ui`` leads to the page."""
    return RedirectResponse("/ui/", status_code=307)


def page_routes() -> list[BaseRoute]:
    """The page's routes (public: the page asks for a token when the data routes want one)."""
    return [
        Route("/ui", to_page, methods=["GET"]),
        Route("/ui/", page_file, methods=["GET"]),
        Route("/ui/{name}", page_file, methods=["GET"]),
    ]
