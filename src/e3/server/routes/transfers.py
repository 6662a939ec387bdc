"""Transfers (the id in the URL is the credential: no bearer token) and ``e3 run`` jobs."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from e3.base.names import check_hash
from e3.errors import E3Error, UsageError
from e3.model import wire
from e3.model.bodies import JobStatus, TaskRunRequest, UploadRequest, UploadTicket
from e3.model.runs import start_options
from e3.server.http import (
    MAX_BODY,
    Endpoint,
    absolute_url,
    beast2_reply,
    blocking,
    param,
    typed_body,
)
from e3.server.routes.common import job_reply, start_job
from e3.server.state import server_of

#: Largest input file of ``e3 run``.
MAX_RUN_INPUT = MAX_BODY * 64


async def put_upload(request: Request) -> Response:
    """Receive the bytes of an announced upload (size and hash enforced)."""
    spool = server_of(request).transfers
    up = spool.begin_receiving(param(request, "id"))
    size = 0
    digest = hashlib.sha256()
    ok = False
    # A file of this PUT's own: nothing another request writes can end up in it.
    fd, name = tempfile.mkstemp(dir=spool.spool, prefix=f"up-{up.id}.", suffix=".partial")
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
        spool.end_receiving(up, ok)
    return Response(status_code=200)


async def get_download(request: Request) -> Response:
    """Fetch prepared bytes (once)."""
    d = server_of(request).transfers.take_download(param(request, "id"))
    return FileResponse(
        d.path,
        media_type=d.content_type,
        headers={"X-Content-SHA256": d.sha256},
        background=BackgroundTask(d.path.unlink, missing_ok=True),
    )


async def announce_run_input(request: Request) -> Response:
    """Announce an input file for ``e3 run``."""
    body: UploadRequest = await typed_body(request, UploadRequest)
    check_hash(body.hash)
    server = server_of(request)
    server.repo(request)
    if not 0 <= body.size <= MAX_RUN_INPUT:
        raise UsageError(f"a run input may be 0..{MAX_RUN_INPUT} bytes")
    up = server.transfers.new_upload(
        param(request, "repo"), body.size, "run-input", hash_=body.hash
    )
    return beast2_reply(
        UploadTicket(up.id, absolute_url(request, f"/api/uploads/{up.id}")), UploadTicket
    )


async def start_run(request: Request) -> Response:
    """Run one task of a package on uploaded inputs (a job)."""
    body: TaskRunRequest = await typed_body(request, TaskRunRequest)
    options = start_options(isolation=body.isolation, timeout=body.timeout)
    server = server_of(request)
    repo = server.repo(request)
    name = param(request, "repo")
    ups = []
    try:
        for item in body.inputs:
            ups.append(server.transfers.claim(item.upload_id, name, "run-input"))
    except E3Error:
        for up in ups:
            server.transfers.finish_upload(up.id)
        raise

    def work() -> JobStatus:
        for up, item in zip(ups, body.inputs, strict=True):
            check_value_file(up.path, item.name, server.config.limits.max_value)
        hashes: list[str] = []
        fd, tmp = tempfile.mkstemp(dir=server.transfers.spool, suffix=".beast2")
        os.close(fd)
        out = Path(tmp)
        try:
            res = repo.task_run(
                body.package,
                body.task,
                [u.path for u in ups],
                out,
                force=body.force,
                isolation=options.isolation,
                timeout=options.timeout,
                labels=[item.name for item in body.inputs],
                on_input=lambda _label, h: hashes.append(h),
            )
            url = None
            if res.error is None and res.output_hash is not None:
                d = server.transfers.new_download(out, wire.BEAST2, res.output_hash)
                url = absolute_url(request, f"/api/downloads/{d.id}")
            return JobStatus("succeeded", ran=res, input_hashes=hashes, download_url=url)
        finally:
            out.unlink(missing_ok=True)
            for u in ups:
                server.transfers.finish_upload(u.id)

    return start_job(request, "run", work)


def check_value_file(path: Path, label: str, limit: int) -> None:
    """Refuse a Beast2 input file that decodes to more than ``limit`` bytes.

    Text inputs are not compressed: their upload size already bounds them.
    """
    from e3.codec import beast2

    with open(path, "rb") as f:
        head = f.read(len(beast2.MAGIC_V5))
    if beast2.is_beast2(head):
        try:
            beast2.value_size(path.read_bytes(), limit)
        except E3Error as exc:
            raise type(exc)(f"{label[:200]}: {exc.message}", **exc.details) from exc


async def run_status(request: Request) -> Response:
    """An ``e3 run`` job's status, with the download URL of its output."""
    return await job_reply(request, "run")


ENDPOINTS = [
    Endpoint(
        "PUT", "/api/uploads/{id}", put_upload, "Upload bytes for an announced transfer", auth=False
    ),
    Endpoint("GET", "/api/downloads/{id}", get_download, "Fetch prepared bytes (once)", auth=False),
    Endpoint(
        "POST",
        "/api/repos/{repo}/run/inputs",
        announce_run_input,
        "Announce an input file for a task run",
        "write",
        body=UploadRequest,
        reply=UploadTicket,
    ),
    Endpoint(
        "POST",
        "/api/repos/{repo}/run",
        start_run,
        "Run one task of a package on uploaded inputs",
        "write",
        body=TaskRunRequest,
    ),
    Endpoint(
        "GET", "/api/repos/{repo}/run/{id}", run_status, "Task run status (with a download URL)"
    ),
]
