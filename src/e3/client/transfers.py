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
from urllib.parse import urlsplit

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
    tmp = out.with_name(f"{out.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as f:
            for chunk in resp.iter_bytes(CHUNK):
                digest.update(chunk)
                f.write(chunk)
                size += len(chunk)
        expected = resp.headers.get("x-content-sha256")
        if expected and digest.hexdigest() != expected:
            raise RemoteError("downloaded bytes do not match their hash")
        os.replace(tmp, out)
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror}") from exc
    finally:
        resp.close()
        tmp.unlink(missing_ok=True)
    return size
