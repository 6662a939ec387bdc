"""Moving bytes to and from a server: uploads, downloads, and waiting for server-side jobs.

Large values, package zips and exports do not travel inside typed bodies: they
are uploaded to (or downloaded from) one-time URLs, streamed in chunks, and
checked against their SHA-256. Imports, exports, collections and checks run as
jobs on the server, long-polled until they end.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from e3.client.http import Http
from e3.errors import RemoteError, StorageError, error_for_code
from e3.model.bodies import JobStatus

#: Chunk size for streamed transfers.
CHUNK = 1 << 20


def file_chunks(path: Path) -> Iterator[bytes]:
    """A file's bytes, a chunk at a time."""
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def wait_job(http: Http, path: str) -> JobStatus:
    """Wait for a server-side job to end (long polls: no request sleeps in the client)."""
    while True:
        status: JobStatus = http.call("GET", path, JobStatus, params={"wait": "20"})
        if status.state == "running":
            continue
        if status.state == "failed":
            cls = error_for_code(status.error_code or "internal")
            raise cls(status.message or "the server job failed")
        return status


def download(http: Http, url: str, out: Path) -> int:
    """Stream a download into ``out`` (staged and renamed: never half-written); its size."""
    resp = http.check(http.request("GET", urlsplit(url).path, auth=False, stream=True))
    try:
        return save(resp, out)
    finally:
        resp.close()


def save(resp: httpx.Response, out: Path) -> int:
    """Stream a reply's body into ``out`` (staged, hash-checked, renamed); its size."""
    tmp = out.with_name(f"{out.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as f:
            for chunk in resp.iter_bytes(CHUNK):
                digest.update(chunk)
                f.write(chunk)
                size += len(chunk)
        _check_hash(resp, digest)
        os.replace(tmp, out)
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return size


def read_all(resp: httpx.Response) -> bytes:
    """A reply's whole body, hash-checked, gathered into one buffer as it arrives.

    httpx would keep every chunk and then join them; here the chunks go into
    one buffer sized from ``Content-Length``, so a large value is held once
    (and once more, briefly, as the returned ``bytes``).
    """
    declared = resp.headers.get("content-length")
    buf = bytearray(int(declared)) if declared and declared.isdigit() else bytearray()
    view = memoryview(buf)
    digest = hashlib.sha256()
    at = 0
    for chunk in resp.iter_bytes(CHUNK):
        digest.update(chunk)
        end = at + len(chunk)
        if end <= len(buf):
            view[at:end] = chunk
        else:
            view.release()
            buf[at:] = chunk
            view = memoryview(buf)
        at = end
    view.release()
    if at != len(buf):
        raise RemoteError(f"received {at} bytes, {len(buf)} were announced")
    _check_hash(resp, digest)
    return bytes(buf)


def _check_hash(resp: httpx.Response, digest: Any) -> None:
    expected = resp.headers.get("x-content-sha256")
    if expected and digest.hexdigest() != expected:
        raise RemoteError("received bytes do not match their hash")
