"""HTTP plumbing shared by every route: typed bodies, replies, paths, query parameters.

Typed bodies are Beast2 ``success|error`` envelopes (:mod:`e3.model.wire`);
errors carry the HTTP status of :data:`e3.errors.ERROR_TABLE`. Dataset paths
and package specs are parsed from the raw request path, percent-decoding one
segment at a time, and validated like any CLI argument, so no request can name
a file outside its repository.
"""

from __future__ import annotations

import os
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from e3.base.names import check_field_name
from e3.base.paths import DatasetPath
from e3.errors import (
    AuthError,
    DecodeError,
    E3Error,
    InvalidPath,
    RequestTooLarge,
    UnsupportedMediaType,
    UsageError,
)
from e3.model import wire

#: Largest typed request body (a dataset value above it uses the upload flow).
MAX_BODY = 1 << 20
#: Longest a long-poll waits (seconds).
MAX_WAIT = 30.0
#: Bytes read from disk at a time when a file is streamed to a client.
STREAM_CHUNK = 1 << 20

Role = Literal["read", "write", "admin"]
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    """One route: method, path, handler, and what a caller needs to reach it.

    ``auth=False`` routes are reached with a one-time id in the path (transfers)
    or are the login provider's own; ``role`` is the repository permission the
    caller needs (see :mod:`e3.server.policy`); ``media`` is what the reply is
    (the web view's routes answer JSON).
    """

    method: str
    path: str
    handler: Handler
    summary: str
    role: Role = "read"
    auth: bool = True
    body: Any = None
    reply: Any = None
    media: str = wire.BEAST2


def beast2_reply(value: Any, py_type: Any, status: int = 200) -> Response:
    """A typed success reply."""
    return Response(wire.encode_success(value, py_type), status_code=status, media_type=wire.BEAST2)


def east_reply(value: Any, east_type: Any, status: int = 200) -> Response:
    """A typed success reply from an East value."""
    return Response(
        wire.encode_success_east(value, east_type), status_code=status, media_type=wire.BEAST2
    )


def error_reply(
    exc: E3Error, headers: dict[str, str] | None = None, *, media: str = wire.BEAST2
) -> Response:
    """An error reply with the status the error table gives the error.

    Routes that answer in JSON (the web view's) get their errors in JSON too,
    ``{"error": {"code", "message"}}``: a page cannot decode Beast2.
    """
    extra = dict(headers or {})
    if isinstance(exc, AuthError):
        extra["WWW-Authenticate"] = "Bearer"
    if media != wire.BEAST2:
        body = {"error": {"code": exc.spec.code, "message": exc.message}}
        return JSONResponse(body, status_code=exc.spec.http_status, headers=extra or None)
    return Response(
        wire.encode_error(exc),
        status_code=exc.spec.http_status,
        media_type=wire.BEAST2,
        headers=extra or None,
    )


def file_reply(
    request: Request, f: BinaryIO, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    """Stream an open file to the client (and close it), never holding more than a chunk.

    Each chunk is read in the thread pool, so a slow disk never stalls the event
    loop, and the next is read only once the previous one is handed to the
    connection (uvicorn waits while the client is slow to read): a reply costs
    ``STREAM_CHUNK`` bytes of memory whatever the file's size.
    """
    size = os.fstat(f.fileno()).st_size
    extra = {**(headers or {}), "Content-Length": str(size)}
    if request.method == "HEAD":
        f.close()
        return Response(status_code=200, media_type=media_type, headers=extra)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await blocking(f.read, STREAM_CHUNK):
                yield chunk
        finally:
            f.close()

    # The background close also runs when the client leaves before the first chunk.
    return StreamingResponse(
        chunks(), media_type=media_type, headers=extra, background=BackgroundTask(f.close)
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
        raise UnsupportedMediaType(
            f"expected Content-Type {wire.BEAST2}, got {ctype[:60] or 'none'}"
        )


async def typed_body(request: Request, py_type: Any) -> Any:
    """A Beast2 request body of the wire type of ``py_type`` (decoded off the event loop)."""
    require_beast2(request)
    data = await read_body(request)
    return await blocking(decode_body, data, py_type)


def decode_body(data: bytes, py_type: Any) -> Any:
    """Decode a typed body (bounded: see :func:`e3.model.wire.decode_body`)."""
    try:
        return wire.decode_body(data, py_type)
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


def dataset_path(segs: list[str]) -> DatasetPath:
    """A dataset path from URL segments (each a valid field name)."""
    for s in segs:
        check_field_name(s)
    return tuple(segs)


def package_spec(segs: list[str]) -> str:
    """``name@version`` from the path segments after ``/packages`` (scoped names span two)."""
    if len(segs) == 2:
        return f"{segs[0]}@{segs[1]}"
    if len(segs) == 3 and segs[0].startswith("@"):
        return f"{segs[0]}/{segs[1]}@{segs[2]}"
    raise InvalidPath("expected /packages/<name>/<version>")


def param(request: Request, name: str) -> str:
    """A path parameter."""
    return str(request.path_params[name])


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
    """Run repository work off the event loop.

    An exception leaves the worker thread with its frames' locals dropped: they
    may hold east-py values (a table being read), which must be released on
    the thread that made them (:mod:`e3.codec.plain`), not on the loop's.
    """
    return run_in_threadpool(_frames_dropped_on_error, fn, *args, **kwargs)


def _frames_dropped_on_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        seen: set[int] = set()
        chained: BaseException | None = exc
        while chained is not None and id(chained) not in seen:
            seen.add(id(chained))
            traceback.clear_frames(chained.__traceback__)
            chained = chained.__cause__ or chained.__context__
        raise


def absolute_url(request: Request, path: str) -> str:
    """An absolute URL on this server (as the client reached it)."""
    return str(request.base_url).rstrip("/") + path
