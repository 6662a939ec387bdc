"""Datasets: list, get (raw Beast2), status, set, and the upload flow for large values."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from e3.base.names import check_hash
from e3.base.paths import format_keypath
from e3.errors import InvalidPath, PermissionDenied, UsageError
from e3.model import wire
from e3.model.bodies import UploadRequest, UploadTicket
from e3.model.results import DatasetEntry
from e3.server.http import (
    MAX_BODY,
    STREAM_CHUNK,
    Endpoint,
    absolute_url,
    beast2_reply,
    blocking,
    dataset_path,
    file_reply,
    param,
    query_flag,
    raw_segments,
    read_body,
    require_beast2,
    typed_body,
)
from e3.server.state import server_of

_DATA = "/api/repos/{repo}/workspaces/{ws}/datasets"


async def list_or_get(request: Request) -> Response:
    """A listing (``?list``, or the root), a status (``?status``) or a value.

    A status of the root is refused as the porcelain refuses it (the root is a
    tree), not answered with a listing the client would take for a status.
    """
    server = server_of(request)
    repo = server.repo(request)
    ws = param(request, "ws")
    path = dataset_path(raw_segments(request, 6))
    if query_flag(request, "list") or not (path or query_flag(request, "status")):
        entries = await blocking(
            repo.dataset_list,
            ws,
            path,
            recursive=query_flag(request, "recursive"),
            with_status=query_flag(request, "status"),
        )
        return beast2_reply(entries, list[DatasetEntry])
    if query_flag(request, "status"):
        return beast2_reply(await blocking(repo.dataset_status, ws, path), DatasetEntry)
    _type, h = await blocking(repo.dataset_object, ws, path)
    if h is None:
        return Response(b"", media_type=wire.BEAST2, headers={"X-E3-Null": "1"})
    f = await blocking(repo.open_object, h)
    size = os.fstat(f.fileno()).st_size
    if size > MAX_BODY and query_flag(request, "redirect"):
        try:
            tmp = await blocking(_spool_copy, f, server.transfers.spool)
        finally:
            f.close()
        d = server.transfers.new_download(tmp, wire.BEAST2, h)
        return JSONResponse(
            {"url": absolute_url(request, f"/api/downloads/{d.id}")},
            headers={"X-Content-Length": str(size), "X-Content-SHA256": h},
        )
    return file_reply(request, f, wire.BEAST2, {"X-Content-SHA256": h})


def _spool_copy(f: BinaryIO, spool: Path) -> Path:
    """A copy of an open file in the transfer spool (for a one-time download)."""
    fd, tmp = tempfile.mkstemp(dir=spool)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(f, out, STREAM_CHUNK)
    return Path(tmp)


async def set_dataset(request: Request) -> Response:
    """Set a dataset from a Beast2 body (up to 1 MiB, decoding to at most ``--max-value``)."""
    require_beast2(request)
    data = await read_body(request)
    server = server_of(request)
    repo = server.repo(request)
    path = dataset_path(raw_segments(request, 6))
    limit = server.config.limits.max_value
    h = await blocking(repo.dataset_set, param(request, "ws"), path, data, limit=limit)
    return beast2_reply(h, str)


async def upload_dataset(request: Request) -> Response:
    """``…/upload`` announces a large value; ``…/upload/<id>`` sets it once uploaded."""
    server = server_of(request)
    repo = server.repo(request)
    name, ws = param(request, "repo"), param(request, "ws")
    segs = raw_segments(request, 6)
    if segs[-1:] == ["upload"]:
        path, commit = dataset_path(segs[:-1]), None
    elif segs[-2:-1] == ["upload"]:
        path, commit = dataset_path(segs[:-2]), segs[-1]
    else:
        raise InvalidPath("expected …/datasets/<path>/upload[/<id>]")
    if not path:
        raise InvalidPath("no dataset path")
    target = f"{ws}\0" + "\0".join(path)
    if commit is None:
        body: UploadRequest = await typed_body(request, UploadRequest)
        check_hash(body.hash)
        # The writable check and the lock come first: nothing is uploaded for a refusal.
        entry = await blocking(repo.dataset_status, ws, path)
        if not entry.writable:
            raise PermissionDenied(
                f"dataset {format_keypath(path)} is not writable", path=format_keypath(path)
            )
        # Beast2 bytes are never much larger than what they decode to (a header and
        # frame lengths): an upload beyond the value limit could never be committed.
        limits = server.config.limits
        limit = min(limits.max_upload, limits.max_value + MAX_BODY)
        if not 0 < body.size <= limit:
            raise UsageError(f"upload size must be 1..{limit} bytes")
        up = server.transfers.new_upload(name, body.size, "dataset", target=target, hash_=body.hash)
        return beast2_reply(
            UploadTicket(up.id, absolute_url(request, f"/api/uploads/{up.id}")), UploadTicket
        )
    up = server.transfers.claim(commit, name, "dataset", target)
    try:
        data = await blocking(up.path.read_bytes)
        # lock + type + writable checks, and the decoded size bounded
        h = await blocking(repo.dataset_set, ws, path, data, limit=server.config.limits.max_value)
    finally:
        server.transfers.finish_upload(up.id)
    return beast2_reply(h, str)


ENDPOINTS = [
    Endpoint("GET", _DATA, list_or_get, "List top-level datasets", reply=list[DatasetEntry]),
    Endpoint(
        "GET",
        f"{_DATA}/{{path:path}}",
        list_or_get,
        "A dataset's value (raw Beast2), or ?list / ?status",
    ),
    Endpoint(
        "PUT",
        f"{_DATA}/{{path:path}}",
        set_dataset,
        "Set a dataset from a Beast2 body (up to 1 MiB)",
        "write",
        reply=str,
    ),
    Endpoint(
        "POST",
        f"{_DATA}/{{path:path}}",
        upload_dataset,
        "Large dataset values: …/upload announces one, …/upload/<id> sets it",
        "write",
    ),
]
