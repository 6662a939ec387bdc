"""The e3 HTTP API: a Starlette application over the same operations as the CLI.

Paths follow the reference (``/api/repos/<repo>/…``); typed bodies are Beast2
``success|error`` envelopes (:mod:`e3.model.wire`); errors carry the HTTP status of
:data:`e3.errors.ERROR_TABLE`. Repository work runs in a thread pool so the
event loop only moves bytes; dataflows run in threads of their own and can be
polled, long-polled and cancelled (cancel kills the running tasks).

Security: dataset paths and package specs are parsed from the raw request path
(percent-decoding per segment) and validated like any CLI argument, so no
request can name a file outside its repository; typed bodies are limited to
:data:`MAX_BODY` bytes and must be ``application/beast2``; uploads stream to
disk with their announced size enforced, and their ids are unguessable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from e3.api.local import LocalRepository
from e3.base.paths import format_keypath
from e3.errors import (
    AuthError,
    DecodeError,
    E3Error,
    InvalidPath,
    JobNotFound,
    MethodNotAllowed,
    NotFoundError,
    PermissionDenied,
    RequestTooLarge,
    UnsupportedMediaType,
    UsageError,
)
from e3.model import wire
from e3.model.bodies import (
    DataflowProgress,
    DeployRequest,
    ExecutionInfo,
    GcRequest,
    ImportRequest,
    TaskRunRequest,
    UploadRequest,
    WorkspaceExportRequest,
    WorkspaceRequest,
)
from e3.model.results import (
    DataflowRequest,
    DatasetEntry,
    GcResult,
    ImportResult,
    JobStarted,
    JobStatus,
    PackageInfo,
    RepoStatus,
    TaskInfo,
    UploadTicket,
    WorkspaceInfo,
)
from e3.server.auth import Identity, Provider, TokenValidator
from e3.server.state import Dataflows, Jobs, Repositories, Transfers

#: Largest typed request body (a dataset value above it uses the upload flow).
MAX_BODY = 1 << 20
#: Largest upload (package zips, large dataset values).
MAX_UPLOAD = 5 << 30
#: Most tasks one run started over HTTP may run at once.
MAX_CONCURRENCY = 64
#: Longest a long-poll waits (seconds).
MAX_WAIT = 30.0


@dataclass
class ServerConfig:
    """How a server is set up (command-line options of ``e3-api-server``)."""

    repos: Repositories
    base_url: str
    cors: bool = False
    provider: Provider | None = None
    validator: TokenValidator | None = None
    max_upload: int = MAX_UPLOAD


class E3Server:
    """Shared state of one server."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.repos = config.repos
        self.jobs = Jobs()
        self.transfers = Transfers()
        self.dataflows = Dataflows()

    def service(self, repo: str) -> LocalRepository:
        """The local service of a served repository."""
        return LocalRepository(self.repos.open(repo))

    def url(self, request: Request, path: str) -> str:
        """An absolute URL on this server (as the client reached it)."""
        return str(request.base_url).rstrip("/") + path

    def close(self) -> None:
        """Stop dataflows and jobs; drop spooled transfers."""
        self.dataflows.close()
        self.jobs.close()
        self.transfers.close()


# ── request helpers ─────────────────────────────────────────────────────────


def beast2_reply(value: Any, py_type: Any, status: int = 200) -> Response:
    """A typed success reply."""
    return Response(wire.encode_success(value, py_type), status_code=status, media_type=wire.BEAST2)


def east_reply(value: Any, east_type: Any, status: int = 200) -> Response:
    """A typed success reply from an East value."""
    return Response(
        wire.encode_success_east(value, east_type), status_code=status, media_type=wire.BEAST2
    )


def error_reply(exc: E3Error) -> Response:
    """An error reply with the status the error table gives the error."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) else None
    return Response(
        wire.encode_error(exc),
        status_code=exc.spec.http_status,
        media_type=wire.BEAST2,
        headers=headers,
    )


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused if larger than ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_large = int(declared) > limit
        except ValueError as exc:
            raise UsageError("invalid Content-Length") from exc
        if too_large:
            raise RequestTooLarge(f"request body too large (limit {limit} bytes)")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"request body too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def require_beast2(request: Request) -> None:
    """Refuse a body that is not declared as Beast2."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != wire.BEAST2:
        raise UnsupportedMediaType(f"expected Content-Type {wire.BEAST2}, got {ctype or 'none'}")


async def typed_body(request: Request, py_type: Any) -> Any:
    """A Beast2 request body of the wire type of ``py_type``."""
    require_beast2(request)
    data = await read_body(request)
    from e3.codec import beast2

    value = beast2.decode(data, wire.east_type_of(py_type), trusted=False)
    try:
        return wire.from_east(value, py_type)
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError("request body does not fit the expected type") from exc


def raw_segments(request: Request, after: int) -> list[str]:
    """Path segments after the first ``after`` ones, percent-decoded one by one.

    Decoding each segment separately keeps an encoded ``/`` (``%2F``) inside
    its segment, where name validation refuses it; empty segments are refused
    rather than skipped, so ``a//b`` never silently means ``a/b``.
    """
    raw = request.scope.get("raw_path") or request.url.path.encode()
    parts = raw.decode("latin-1").split("?")[0].split("/")[1:]
    rest = parts[after:]
    if rest and rest[-1] == "":
        rest = rest[:-1]  # a trailing slash
    out = []
    for seg in rest:
        try:
            text = urllib.parse.unquote(seg, errors="strict")
        except UnicodeDecodeError as exc:
            raise InvalidPath("path segment is not valid UTF-8") from exc
        if text == "":
            raise InvalidPath("empty path segment")
        out.append(text)
    return out


def check_isolation(isolation: str) -> None:
    """Refuse an isolation mode e3 does not have."""
    if isolation not in ("warm", "process"):
        raise UsageError(f"isolation must be warm or process, not {isolation[:40]!r}")


def query_flag(request: Request, name: str) -> bool:
    """``?name``, ``?name=1`` or ``?name=true``."""
    value = request.query_params.get(name)
    return value is not None and value.lower() not in ("0", "false", "no")


def query_int(request: Request, name: str, default: int) -> int:
    """An integer query parameter (0 .. 2**63 - 1)."""
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise UsageError(f"query parameter {name} must be an integer") from exc
    if not 0 <= number < 1 << 63:
        raise UsageError(f"query parameter {name} must be between 0 and 2^63-1")
    return number


def query_wait(request: Request) -> float:
    """``?wait=<seconds>`` for long polls (capped)."""
    value = request.query_params.get("wait")
    if value is None:
        return 0.0
    try:
        return max(0.0, min(float(value), MAX_WAIT))
    except ValueError as exc:
        raise UsageError("query parameter wait must be a number") from exc


def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """Run repository work off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return run_in_threadpool(fn, *args, **kwargs)


# ── application ─────────────────────────────────────────────────────────────


def create_app(config: ServerConfig) -> Starlette:
    """The Starlette application serving ``config.repos``."""
    server = E3Server(config)
    routes: list[BaseRoute] = []
    api: list[tuple[str, str, str]] = []  # (method, path, summary) for the OpenAPI document

    def route(
        path: str, methods: list[str], summary: str, *, auth: bool = True
    ) -> Callable[[Callable[..., Awaitable[Response]]], Callable[..., Any]]:
        # Segments up to a {…:path} parameter hold single names: no encoded '/'.
        fixed = path.split("/")[1:]
        fixed = fixed[: next((i for i, s in enumerate(fixed) if s.endswith(":path}")), len(fixed))]

        def wrap(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Any]:
            async def endpoint(request: Request) -> Response:
                try:
                    if auth:
                        request.state.identity = await authenticate(request)
                    raw = (request.scope.get("raw_path") or b"").decode("latin-1")
                    head = raw.split("?")[0].split("/")[1 : 1 + len(fixed)]
                    if any("%2f" in seg.lower() for seg in head):
                        raise InvalidPath("a '/' is not allowed in this path parameter")
                    return await handler(request)
                except E3Error as exc:
                    return error_reply(exc)

            routes.append(Route(path, endpoint, methods=methods))
            for m in methods:
                api.append((m, path, summary))
            return handler

        return wrap

    async def authenticate(request: Request) -> Identity | None:
        validator = config.validator
        if validator is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("missing bearer token (run `e3 login <server>`)")
        if validator.fetches_keys:  # a JWKS download must not stall the event loop
            identity: Identity = await blocking(validator.validate, token.strip())
            return identity
        return validator.validate(token.strip())

    def p(request: Request, name: str) -> str:
        return str(request.path_params[name])

    async def job_reply(request: Request, kind: str) -> Response:
        """A job's status; with ``?wait=<s>``, once it has ended or after that long."""
        server.repos.open(p(request, "repo"))
        job = server.jobs.get(p(request, "repo"), kind, p(request, "id"))
        wait = query_wait(request)
        if wait:
            await job.changed.wait(lambda: job.done, wait)
        return beast2_reply(job.status, JobStatus)

    # ── repositories ────────────────────────────────────────────────────
    @route("/api/repos", ["GET"], "List repositories")
    async def list_repos(request: Request) -> Response:
        return beast2_reply(await blocking(server.repos.names), list[str])

    @route("/api/repos/{repo}", ["PUT"], "Create a repository")
    async def create_repo(request: Request) -> Response:
        name = p(request, "repo")
        if not server.repos.multi:
            raise MethodNotAllowed("this server serves a single repository")
        await blocking(server.repos.create, name)
        return beast2_reply(name, str, 201)

    @route("/api/repos/{repo}", ["DELETE"], "Delete a repository")
    async def delete_repo(request: Request) -> Response:
        name = p(request, "repo")
        if not server.repos.multi:
            raise MethodNotAllowed("this server serves a single repository")
        svc = server.service(name)

        def remove() -> None:
            for w in svc.workspace_list():
                svc.workspace_remove(w.name)
            svc.repo_remove()

        await blocking(remove)
        return beast2_reply(None, type(None))

    @route("/api/repos/{repo}/status", ["GET"], "Repository summary")
    async def repo_status(request: Request) -> Response:
        svc = server.service(p(request, "repo"))
        st = await blocking(svc.repo_status)
        return beast2_reply(
            RepoStatus(p(request, "repo"), st.object_count, st.packages, st.workspaces), RepoStatus
        )

    @route("/api/repos/{repo}/gc", ["POST"], "Start a garbage collection")
    async def start_gc(request: Request) -> Response:
        body: GcRequest = await typed_body(request, GcRequest)
        name = p(request, "repo")
        svc = server.service(name)

        def work() -> JobStatus:
            res: GcResult = svc.gc(dry_run=body.dry_run, min_age_seconds=body.min_age_seconds)
            return JobStatus("succeeded", collected=res)

        job = server.jobs.start(name, "gc", work)
        return beast2_reply(JobStarted(job.id), JobStarted, 202)

    @route("/api/repos/{repo}/gc/{id}", ["GET"], "Garbage collection status")
    async def gc_status(request: Request) -> Response:
        server.repos.open(p(request, "repo"))
        return await job_reply(request, "gc")

    @route("/api/repos/{repo}/verify", ["POST"], "Start a repository check")
    async def start_verify(request: Request) -> Response:
        name = p(request, "repo")
        svc = server.service(name)
        job = server.jobs.start(
            name, "verify", lambda: JobStatus("succeeded", verified=svc.verify())
        )
        return beast2_reply(JobStarted(job.id), JobStarted, 202)

    @route("/api/repos/{repo}/verify/{id}", ["GET"], "Repository check status")
    async def verify_status(request: Request) -> Response:
        return await job_reply(request, "verify")

    @route("/api/repos/{repo}/objects/{hash}", ["GET"], "Raw bytes of an object")
    async def get_object(request: Request) -> Response:
        from e3.base.names import check_hash

        repo = server.repos.open(p(request, "repo"))
        h = check_hash(p(request, "hash"))
        data = await blocking(repo.objects.get, h, verify=True)
        return Response(data, media_type=wire.BEAST2, headers={"X-Content-SHA256": h})

    # ── packages ────────────────────────────────────────────────────────
    @route("/api/repos/{repo}/packages", ["GET"], "List packages")
    async def list_packages(request: Request) -> Response:
        svc = server.service(p(request, "repo"))
        return beast2_reply(await blocking(svc.package_list), list[PackageInfo])

    def package_spec(segs: list[str]) -> str:
        """``name@version`` from the path segments after ``/packages`` (scoped names span two)."""
        if len(segs) == 2:
            return f"{segs[0]}@{segs[1]}"
        if len(segs) == 3 and segs[0].startswith("@"):
            return f"{segs[0]}/{segs[1]}@{segs[2]}"
        raise InvalidPath("expected /packages/<name>/<version>")

    @route("/api/repos/{repo}/packages/{spec:path}", ["GET"], "A package object")
    async def get_package(request: Request) -> Response:
        from e3.core import packages
        from e3.records import package as package_record

        repo = server.repos.open(p(request, "repo"))
        info = await blocking(packages.resolve, repo, package_spec(raw_segments(request, 4)))
        pkg = await blocking(packages.read_package_object, repo, info.hash)
        return east_reply(package_record.to_east(pkg), package_record.PackageObjectType)

    @route("/api/repos/{repo}/packages/{spec:path}", ["DELETE"], "Remove a package")
    async def remove_package(request: Request) -> Response:
        svc = server.service(p(request, "repo"))
        info = await blocking(svc.package_remove, package_spec(raw_segments(request, 4)))
        return beast2_reply(info, PackageInfo)

    @route("/api/repos/{repo}/import", ["POST"], "Announce a package upload")
    async def start_import(request: Request) -> Response:
        body: ImportRequest = await typed_body(request, ImportRequest)
        name = p(request, "repo")
        server.repos.open(name)
        if not 0 < body.size <= config.max_upload:
            raise UsageError(f"upload size must be 1..{config.max_upload} bytes")
        up = server.transfers.new_upload(
            name, body.size, "import", target="force" if body.force else ""
        )
        return beast2_reply(
            UploadTicket(up.id, server.url(request, f"/api/uploads/{up.id}")), UploadTicket
        )

    @route("/api/repos/{repo}/import/{id}", ["POST"], "Import an uploaded package")
    async def run_import(request: Request) -> Response:
        name = p(request, "repo")
        svc = server.service(name)
        up = server.transfers.claim(p(request, "id"), name, "import")

        def work() -> JobStatus:
            try:
                res: ImportResult = svc.package_import(up.path, force=up.target == "force")
                return JobStatus("succeeded", imported=res)
            finally:
                server.transfers.finish_upload(up.id)

        job = server.jobs.start(name, "import", work)
        return beast2_reply(JobStarted(job.id), JobStarted, 202)

    @route("/api/repos/{repo}/import/{id}", ["GET"], "Package import status")
    async def import_status(request: Request) -> Response:
        return await job_reply(request, "import")

    def export_job(request: Request, name: str, export: Callable[[Path], Any]) -> Response:
        def work() -> JobStatus:
            fd, tmp = tempfile.mkstemp(dir=server.transfers.spool, suffix=".zip")
            os.close(fd)
            try:
                res = export(Path(tmp))
                with open(tmp, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
                d = server.transfers.new_download(Path(tmp), "application/zip", digest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return JobStatus(
                "succeeded",
                exported=res,
                download_url=server.url(request, f"/api/downloads/{d.id}"),
            )

        job = server.jobs.start(name, "export", work)
        return beast2_reply(JobStarted(job.id), JobStarted, 202)

    @route("/api/repos/{repo}/packages/{spec:path}", ["POST"], "Start a package export (…/export)")
    async def start_export(request: Request) -> Response:
        segs = raw_segments(request, 4)
        if segs[-1:] != ["export"]:
            raise InvalidPath("expected /packages/<name>/<version>/export")
        spec = package_spec(segs[:-1])
        name = p(request, "repo")
        svc = server.service(name)
        from e3.core import packages

        await blocking(packages.resolve, svc.repo, spec)  # the package exists
        return export_job(request, name, lambda out: svc.package_export(spec, out))

    @route("/api/repos/{repo}/export/{id}", ["GET"], "Export status (with a download URL)")
    async def export_status(request: Request) -> Response:
        return await job_reply(request, "export")

    # ── e3 run: one task on uploaded input files ────────────────────────
    @route("/api/repos/{repo}/run/inputs", ["POST"], "Announce an input file for a task run")
    async def announce_run_input(request: Request) -> Response:
        body: UploadRequest = await typed_body(request, UploadRequest)
        from e3.base.names import check_hash

        check_hash(body.hash)
        name = p(request, "repo")
        server.repos.open(name)
        if not 0 <= body.size <= MAX_BODY * 64:
            raise UsageError(f"a run input may be 0..{MAX_BODY * 64} bytes")
        up = server.transfers.new_upload(name, body.size, "run-input", hash_=body.hash)
        return beast2_reply(
            UploadTicket(up.id, server.url(request, f"/api/uploads/{up.id}")), UploadTicket
        )

    @route("/api/repos/{repo}/run", ["POST"], "Run one task of a package on uploaded inputs")
    async def start_run(request: Request) -> Response:
        body: TaskRunRequest = await typed_body(request, TaskRunRequest)
        check_isolation(body.isolation)
        name = p(request, "repo")
        svc = server.service(name)
        ups = []
        try:
            for item in body.inputs:
                ups.append(server.transfers.claim(item.upload_id, name, "run-input"))
        except E3Error:
            for up in ups:
                server.transfers.finish_upload(up.id)
            raise
        labels = [item.name for item in body.inputs]

        def work() -> JobStatus:
            hashes: list[str] = []
            fd, tmp = tempfile.mkstemp(dir=server.transfers.spool, suffix=".beast2")
            os.close(fd)
            out = Path(tmp)
            try:
                res = svc.task_run(
                    body.package,
                    body.task,
                    [u.path for u in ups],
                    out,
                    force=body.force,
                    isolation=body.isolation,
                    on_input=lambda _label, h: hashes.append(h),
                    labels=labels,
                    timeout=body.timeout,
                )
                url = None
                if res.error is None and res.output_hash is not None:
                    d = server.transfers.new_download(out, wire.BEAST2, res.output_hash)
                    url = server.url(request, f"/api/downloads/{d.id}")
                return JobStatus("succeeded", ran=res, input_hashes=hashes, download_url=url)
            finally:
                out.unlink(missing_ok=True)
                for u in ups:
                    server.transfers.finish_upload(u.id)

        job = server.jobs.start(name, "run", work)
        return beast2_reply(JobStarted(job.id), JobStarted, 202)

    @route("/api/repos/{repo}/run/{id}", ["GET"], "Task run status (with a download URL)")
    async def run_status(request: Request) -> Response:
        return await job_reply(request, "run")

    # ── transfers (ids are the credential: no bearer token) ─────────────
    @route("/api/uploads/{id}", ["PUT"], "Upload bytes for an announced transfer", auth=False)
    async def put_upload(request: Request) -> Response:
        up = server.transfers.begin_receiving(p(request, "id"))
        size = 0
        digest = hashlib.sha256()
        ok = False
        # A file of this PUT's own: nothing another request writes can end up in it.
        fd, name = tempfile.mkstemp(
            dir=server.transfers.spool, prefix=f"up-{up.id}.", suffix=".partial"
        )
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > up.size:
                        raise UsageError(f"upload larger than announced ({up.size} bytes)")
                    digest.update(chunk)
                    await blocking(f.write, chunk)
            if size != up.size:
                raise UsageError(f"upload is {size} bytes, {up.size} were announced")
            if up.hash and digest.hexdigest() != up.hash:
                raise UsageError("uploaded bytes do not match the announced hash")
            os.replace(tmp, up.path)
            ok = True
        finally:
            tmp.unlink(missing_ok=True)
            server.transfers.end_receiving(up, ok)
        return Response(status_code=200)

    @route("/api/downloads/{id}", ["GET"], "Fetch prepared bytes (once)", auth=False)
    async def get_download(request: Request) -> Response:
        d = server.transfers.take_download(p(request, "id"))
        from starlette.background import BackgroundTask

        return FileResponse(
            d.path,
            media_type=d.content_type,
            headers={"X-Content-SHA256": d.sha256},
            background=BackgroundTask(d.path.unlink, missing_ok=True),
        )

    # ── workspaces ──────────────────────────────────────────────────────
    @route("/api/repos/{repo}/workspaces", ["GET"], "List workspaces")
    async def list_workspaces(request: Request) -> Response:
        svc = server.service(p(request, "repo"))
        return beast2_reply(await blocking(svc.workspace_list), list[WorkspaceInfo])

    @route("/api/repos/{repo}/workspaces", ["POST"], "Create a workspace")
    async def create_workspace(request: Request) -> Response:
        body: WorkspaceRequest = await typed_body(request, WorkspaceRequest)
        svc = server.service(p(request, "repo"))
        await blocking(svc.workspace_create, body.name)
        return beast2_reply(WorkspaceInfo(body.name, False), WorkspaceInfo, 201)

    def ws_info(svc: LocalRepository, ws: str) -> WorkspaceInfo:
        from e3.core import workspaces

        return workspaces.workspace_info(ws, workspaces.read_state(svc.repo, ws))

    @route("/api/repos/{repo}/workspaces/{ws}", ["GET"], "A workspace")
    async def get_workspace(request: Request) -> Response:
        svc = server.service(p(request, "repo"))
        return beast2_reply(await blocking(ws_info, svc, p(request, "ws")), WorkspaceInfo)

    @route("/api/repos/{repo}/workspaces/{ws}", ["DELETE"], "Remove a workspace")
    async def remove_workspace(request: Request) -> Response:
        svc = server.service(p(request, "repo"))
        await blocking(svc.workspace_remove, p(request, "ws"))
        return beast2_reply(None, type(None))

    @route("/api/repos/{repo}/workspaces/{ws}/deploy", ["POST"], "Deploy a package")
    async def deploy(request: Request) -> Response:
        body: DeployRequest = await typed_body(request, DeployRequest)
        svc = server.service(p(request, "repo"))
        info = await blocking(svc.workspace_deploy, p(request, "ws"), body.package_ref)
        return beast2_reply(info, PackageInfo)

    @route("/api/repos/{repo}/workspaces/{ws}/status", ["GET"], "What a run would do now")
    async def ws_status(request: Request) -> Response:
        from e3.model.results import WorkspaceStatus

        svc = server.service(p(request, "repo"))
        return beast2_reply(await blocking(svc.workspace_status, p(request, "ws")), WorkspaceStatus)

    @route("/api/repos/{repo}/workspaces/{ws}/export", ["POST"], "Start a workspace export")
    async def ws_export(request: Request) -> Response:
        body: WorkspaceExportRequest = await typed_body(request, WorkspaceExportRequest)
        from e3.base.names import check_package_name, check_version

        if body.name:
            check_package_name(body.name)  # refused now, not in a job that already ran
        if body.version:
            check_version(body.version)
        name, ws = p(request, "repo"), p(request, "ws")
        svc = server.service(name)
        await blocking(ws_info, svc, ws)  # exists
        return export_job(
            request,
            name,
            lambda out: svc.workspace_export(ws, out, name=body.name, version=body.version),
        )

    # ── datasets ────────────────────────────────────────────────────────
    def dataset_path(segs: list[str]) -> tuple[str, ...]:
        """A dataset path from URL segments (each a valid field name)."""
        from e3.base.names import check_field_name

        for s in segs:
            check_field_name(s)
        return tuple(segs)

    async def list_or_get(request: Request) -> Response:
        svc = server.service(p(request, "repo"))
        ws = p(request, "ws")
        path = dataset_path(raw_segments(request, 6))
        if query_flag(request, "list") or not path:
            entries = await blocking(
                svc.dataset_list,
                ws,
                path,
                recursive=query_flag(request, "recursive"),
                with_status=query_flag(request, "status"),
            )
            return beast2_reply(entries, list[DatasetEntry])
        if query_flag(request, "status"):
            return beast2_reply(await blocking(svc.dataset_status, ws, path), DatasetEntry)
        _type, data = await blocking(svc.dataset_get, ws, path)
        if data is None:
            return Response(b"", media_type=wire.BEAST2, headers={"X-E3-Null": "1"})
        h = hashlib.sha256(data).hexdigest()
        if len(data) > MAX_BODY and query_flag(request, "redirect"):
            fd, tmp = tempfile.mkstemp(dir=server.transfers.spool)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            d = server.transfers.new_download(Path(tmp), wire.BEAST2, h)
            return JSONResponse(
                {"url": server.url(request, f"/api/downloads/{d.id}")},
                headers={"X-Content-Length": str(len(data)), "X-Content-SHA256": h},
            )
        return Response(data, media_type=wire.BEAST2, headers={"X-Content-SHA256": h})

    @route("/api/repos/{repo}/workspaces/{ws}/datasets", ["GET"], "List top-level datasets")
    async def list_root(request: Request) -> Response:
        return await list_or_get(request)

    @route(
        "/api/repos/{repo}/workspaces/{ws}/datasets/{path:path}",
        ["GET"],
        "A dataset's value (raw Beast2), or ?list / ?status",
    )
    async def get_dataset(request: Request) -> Response:
        return await list_or_get(request)

    @route(
        "/api/repos/{repo}/workspaces/{ws}/datasets/{path:path}",
        ["PUT"],
        "Set a dataset from a Beast2 body (up to 1 MiB)",
    )
    async def set_dataset(request: Request) -> Response:
        require_beast2(request)
        data = await read_body(request)
        svc = server.service(p(request, "repo"))
        h = await blocking(
            svc.dataset_set, p(request, "ws"), dataset_path(raw_segments(request, 6)), data
        )
        return beast2_reply(h, str)

    @route(
        "/api/repos/{repo}/workspaces/{ws}/datasets/{path:path}",
        ["POST"],
        "Large dataset values: …/upload announces one, …/upload/<id> sets it",
    )
    async def upload_dataset(request: Request) -> Response:
        name, ws = p(request, "repo"), p(request, "ws")
        svc = server.service(name)
        segs = raw_segments(request, 6)
        if segs[-1:] == ["upload"]:
            path, commit = dataset_path(segs[:-1]), None
        elif segs[-2:-1] == ["upload"]:
            path, commit = dataset_path(segs[:-2]), segs[-1]
        else:
            raise InvalidPath("expected …/datasets/<path>/upload[/<id>]")
        if not path:
            raise InvalidPath("no dataset path")
        if commit is None:
            body: UploadRequest = await typed_body(request, UploadRequest)
            from e3.base.names import check_hash

            check_hash(body.hash)
            # The writable check and the lock come first: nothing is uploaded for a refusal.
            entry = await blocking(svc.dataset_status, ws, path)
            if not entry.writable:
                raise PermissionDenied(
                    f"dataset {format_keypath(path)} is not writable", path=format_keypath(path)
                )
            if not 0 < body.size <= config.max_upload:
                raise UsageError(f"upload size must be 1..{config.max_upload} bytes")
            up = server.transfers.new_upload(
                name, body.size, "dataset", target=f"{ws}\0" + "\0".join(path), hash_=body.hash
            )
            return beast2_reply(
                UploadTicket(up.id, server.url(request, f"/api/uploads/{up.id}")), UploadTicket
            )
        up = server.transfers.claim(commit, name, "dataset", f"{ws}\0" + "\0".join(path))
        try:
            data = await blocking(up.path.read_bytes)
            h = await blocking(svc.dataset_set, ws, path, data)  # lock + type + writable checks
        finally:
            server.transfers.finish_upload(up.id)
        return beast2_reply(h, str)

    # ── tasks, dataflow, logs ───────────────────────────────────────────
    def task_infos(svc: LocalRepository, ws: str) -> list[TaskInfo]:
        from e3.core import workspaces
        from e3.dataflow.scheduler import load_graph

        graph = load_graph(svc.repo, workspaces.open_deployed(svc.repo, ws))
        return [
            TaskInfo(
                t.name,
                t.hash,
                [format_keypath(i) for i in t.inputs],
                format_keypath(t.output),
                t.command_ir,
            )
            for t in graph.tasks
        ]

    @route("/api/repos/{repo}/workspaces/{ws}/tasks", ["GET"], "Tasks of the deployed package")
    async def list_tasks(request: Request) -> Response:
        svc = server.service(p(request, "repo"))
        return beast2_reply(await blocking(task_infos, svc, p(request, "ws")), list[TaskInfo])

    @route("/api/repos/{repo}/workspaces/{ws}/tasks/{task}", ["GET"], "One task")
    async def get_task(request: Request) -> Response:
        from e3.errors import TaskNotFound

        svc = server.service(p(request, "repo"))
        for t in await blocking(task_infos, svc, p(request, "ws")):
            if t.name == p(request, "task"):
                return beast2_reply(t, TaskInfo)
        raise TaskNotFound(f"no task '{p(request, 'task')}'", task=p(request, "task"))

    @route(
        "/api/repos/{repo}/workspaces/{ws}/tasks/{task}/execution",
        ["GET"],
        "The execution whose logs the task shows",
    )
    async def task_execution(request: Request) -> Response:
        svc = server.service(p(request, "repo"))
        ex = await blocking(svc.task_execution, p(request, "ws"), p(request, "task"))
        state = ex.status.state if ex.status else "unknown"
        return beast2_reply(
            ExecutionInfo(ex.task_hash, ex.inputs_hash, ex.execution_id, state), ExecutionInfo
        )

    @route("/api/repos/{repo}/workspaces/{ws}/dataflow", ["POST"], "Start a dataflow run")
    async def start_dataflow(request: Request) -> Response:
        from e3.dataflow.scheduler import StartOptions

        body: DataflowRequest = await typed_body(request, DataflowRequest)
        check_isolation(body.isolation)
        name, ws = p(request, "repo"), p(request, "ws")
        repo = server.repos.open(name)
        from e3.core import workspaces

        await blocking(workspaces.open_deployed, repo, ws)
        options = StartOptions(
            filters=tuple(body.filters),
            concurrency=min(max(1, body.concurrency), MAX_CONCURRENCY),
            force=body.force,
            keep_going=body.keep_going,
            timeout=body.timeout,
            isolation=body.isolation,
        )
        run = await blocking(server.dataflows.start, name, repo, ws, options)
        return beast2_reply(JobStarted(run.id), JobStarted, 202)

    @route(
        "/api/repos/{repo}/workspaces/{ws}/dataflow/execution",
        ["GET"],
        "Events of the current run from ?offset (long poll with ?wait)",
    )
    async def dataflow_progress(request: Request) -> Response:
        name, ws = p(request, "repo"), p(request, "ws")
        server.repos.open(name)
        run = server.dataflows.get(name, ws)
        if run is None:
            from e3.errors import ExecutionNotFound

            raise ExecutionNotFound(f"no dataflow has run in workspace '{ws}' on this server")
        wanted = request.query_params.get("run")
        if wanted is not None and wanted != run.id:
            raise JobNotFound(f"run {wanted!r} is no longer the latest of workspace '{ws}'")
        offset = max(0, query_int(request, "offset", 0))
        limit = max(1, min(query_int(request, "limit", 1000), 10_000))
        wait = query_wait(request)
        if wait:
            await run.wait_for_events(offset, wait)
        events = run.events[offset : offset + limit]
        status = (
            "running"
            if run.running
            else (
                run.result.status
                if run.result
                else "cancelled"
                if run.error is not None and run.error.spec.code == "dataflow_aborted"
                else "error"
            )
        )
        progress = DataflowProgress(
            status,
            list(events),
            len(run.events),
            run.result if not run.running else None,
            run.error.spec.code if run.error is not None and not run.running else None,
            run.error.message if run.error is not None and not run.running else None,
        )
        return beast2_reply(progress, DataflowProgress)

    @route(
        "/api/repos/{repo}/workspaces/{ws}/dataflow/cancel",
        ["POST"],
        "Cancel the running dataflow (kills its tasks)",
    )
    async def cancel_dataflow(request: Request) -> Response:
        from e3.errors import ConflictError

        name, ws = p(request, "repo"), p(request, "ws")
        server.repos.open(name)
        run = server.dataflows.get(name, ws)
        wanted = request.query_params.get("run")
        if run is None or not run.running or (wanted is not None and wanted != run.id):
            raise ConflictError(f"no such dataflow is running in workspace '{ws}'")
        run.request_cancel()
        return beast2_reply(None, type(None))

    @route(
        "/api/repos/{repo}/workspaces/{ws}/dataflow/logs",
        ["GET"],
        "Every task with its latest state and number of executions",
    )
    async def list_logs(request: Request) -> Response:
        from e3.model.results import TaskLogSummary

        svc = server.service(p(request, "repo"))
        return beast2_reply(await blocking(svc.task_logs, p(request, "ws")), list[TaskLogSummary])

    @route(
        "/api/repos/{repo}/workspaces/{ws}/dataflow/logs/{task}",
        ["GET"],
        "A slice of a task's log: ?stream=stdout|stderr&offset&limit (&wait to long-poll)",
    )
    async def read_log(request: Request) -> Response:
        from e3.model.results import LogChunk

        svc = server.service(p(request, "repo"))
        stream = request.query_params.get("stream", "stdout")
        if stream not in ("stdout", "stderr"):
            raise UsageError("stream must be stdout or stderr")
        offset = max(0, query_int(request, "offset", 0))
        limit = max(1, min(query_int(request, "limit", 64 << 10), 1 << 20))
        execution = request.query_params.get("execution")
        ws, task = p(request, "ws"), p(request, "task")
        deadline = time.monotonic() + query_wait(request)
        while True:
            chunk: LogChunk = await blocking(
                svc.read_log, ws, task, stream, offset, limit, execution
            )
            if chunk.data or chunk.complete or time.monotonic() >= deadline:
                return beast2_reply(chunk, LogChunk)
            await asyncio.sleep(0.1)  # long poll: the file is checked again shortly

    @route("/api/repos/{repo}/workspaces/{ws}/dataflow/runs", ["GET"], "Past runs")
    async def list_runs(request: Request) -> Response:
        from e3.codec.types import ArrayType
        from e3.records import dataflow as run_record

        svc = server.service(p(request, "repo"))
        runs = await blocking(svc.dataflow_runs, p(request, "ws"))
        return east_reply(
            [run_record.to_east(r) for r in runs], ArrayType(run_record.DataflowRunType)
        )

    # ── OpenAPI, identity provider ──────────────────────────────────────
    async def openapi(request: Request) -> Response:
        from e3.server.openapi import document

        return JSONResponse(document(api))

    routes.append(Route("/api/openapi.json", openapi, methods=["GET"]))
    if config.provider is not None:
        routes.extend(provider_routes(config.provider))

    middleware = []
    if config.cors:
        middleware.append(
            Middleware(
                CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"]
            )
        )

    async def on_error(request: Request, exc: Exception) -> Response:
        return error_reply(E3Error(f"internal error: {type(exc).__name__}"))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        from starlette.exceptions import HTTPException

        code = exc.status_code if isinstance(exc, HTTPException) else 500
        if code == 405:
            return error_reply(MethodNotAllowed(f"{request.method} is not offered here"))
        if code == 404:
            return error_reply(NotFoundError(f"no API endpoint {request.url.path}"))
        return error_reply(UsageError(f"bad request (HTTP {code})"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await blocking(server.close)

    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={Exception: on_error, 404: on_http_error, 405: on_http_error},
    )
    app.router.redirect_slashes = False  # a redirect would dodge the checks on the raw path
    app.state.e3 = server
    app.state.api_routes = api
    return app


def provider_routes(provider: Provider) -> list[BaseRoute]:
    """The built-in identity provider's endpoints (mounted at the server root)."""

    async def discovery(request: Request) -> Response:
        return JSONResponse(provider.discovery())

    async def jwks(request: Request) -> Response:
        return JSONResponse(provider.jwks())

    async def device_authorization(request: Request) -> Response:
        return JSONResponse(provider.device_authorization())

    async def device_page(request: Request) -> Response:
        code = request.query_params.get("user_code", "")
        safe = "".join(c for c in code if c.isalnum() or c == "-")[:16]
        return HTMLResponse(
            "<!doctype html><title>e3 login</title><h1>Approve an e3 login</h1>"
            "<form method='post' action='/device/approve'>"
            f"<p><label>Code shown by e3 login <input name='user_code' value='{safe}'></label>"
            "<p><label>Server approval secret <input name='secret' type='password'></label>"
            "<p><button>Approve</button></form>"
        )

    async def approve(request: Request) -> Response:
        form = await request.form()
        ok = provider.approve(str(form.get("user_code", "")), str(form.get("secret", "")))
        return HTMLResponse(
            "<p>Approved. You can close this page.</p>"
            if ok
            else "<p>Unknown or expired code, or wrong approval secret.</p>",
            status_code=200 if ok else 403,
        )

    async def token(request: Request) -> Response:
        form = await request.form()
        status, body = provider.token({k: str(v) for k, v in form.items()})
        return JSONResponse(body, status_code=status)

    return [
        Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/oauth2/device_authorization", device_authorization, methods=["POST"]),
        Route("/device", device_page, methods=["GET"]),
        Route("/device/approve", approve, methods=["POST"]),
        Route("/oauth2/token", token, methods=["POST"]),
    ]
