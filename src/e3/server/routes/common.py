"""Pieces several route modules share: job replies and export jobs."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from e3.model.bodies import JobStarted, JobStatus
from e3.server.http import absolute_url, beast2_reply, param, query_wait
from e3.server.state import server_of


async def job_reply(request: Request, kind: str) -> Response:
    """A job's status; with ``?wait=<s>``, once it has ended or after that long."""
    server = server_of(request)
    server.repo(request)
    job = server.jobs.get(param(request, "repo"), kind, param(request, "id"))
    wait = query_wait(request)
    if wait:
        await job.changed.wait_async(lambda: job.done, wait)
    return beast2_reply(job.status, JobStatus)


def start_job(request: Request, kind: str, work: Callable[[], JobStatus]) -> Response:
    """Start a job on the request's repository; replies 202 with its id."""
    job = server_of(request).jobs.start(param(request, "repo"), kind, work)
    return beast2_reply(JobStarted(job.id), JobStarted, 202)


def export_job(request: Request, export: Callable[[Path], Any]) -> Response:
    """An export job: writes a zip into the spool and offers it as a one-time download."""
    server = server_of(request)

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
            download_url=absolute_url(request, f"/api/downloads/{d.id}"),
        )

    return start_job(request, "export", work)
