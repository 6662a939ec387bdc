"""Canonical Beast2 bytes: the one byte form e3 stores and hashes.

east-py can write one value in several byte forms (whole blob, paged blob,
manifest directory; v4 or v5; deflate or not), and an object's identity is the
SHA-256 of its bytes. So every value e3 stores goes through :func:`encode`
(whole-value Beast2 v5 with the deterministic deflate frames east-py applies by
default), and every value arriving in another form (a task's paged output, a
user's v4 file) goes through :func:`canonicalize` first. Equal values of equal
types therefore always get equal hashes, which cache hits and early cutoff rely
on.

east-c writes diagnostics straight to file descriptor 2 when it rejects
malformed bytes; decoding untrusted input therefore runs under
:func:`quiet_native_stderr` so users see one clean error line from e3.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from east import is_subtype
from east.serialization.beast2 import (
    decode_beast2_with_header_for,
    encode_beast2_with_header_for,
    read_beast2_type,
)

from e3.codec import small
from e3.codec._datetimes import exact_datetimes
from e3.codec.plain import plain
from e3.codec.types import (
    EastType,
    EastTypeType,
    EastValue,
    IRType,
    canonical,
    same_type,
    short_type,
)
from e3.errors import DecodeError, TypeMismatch, ValueTooLarge

#: The magic of Beast2 v4 and v5 (``0x89 'East' CR LF`` + version byte).
MAGIC_PREFIX = b"\x89East\r\n"
MAGIC_V4 = MAGIC_PREFIX + b"\x04"
MAGIC_V5 = MAGIC_PREFIX + b"\x05"
#: The magic ending an indexed v5 blob (after the index's u64 LE offset).
FOOTER_MAGIC = MAGIC_PREFIX + b"\xf5"
#: Version byte e3 writes. Changing it re-keys every stored object.
WRITE_VERSION = 5

_stderr_lock = threading.Lock()
_devnull: int | None = None


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence file descriptor 2 while east-c parses untrusted bytes.

    east-c prints its own diagnostics before raising; the exception message
    carries the same information, so the print is dropped. A lock serialises
    callers because the redirection is process-wide. ``/dev/null`` stays open
    for the next caller: every task output passes through here.
    """
    global _devnull
    with _stderr_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all: nothing to silence
            yield
            return
        try:
            if _devnull is None:
                _devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            os.dup2(_devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def is_beast2(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` starts with a Beast2 v4 or v5 magic."""
    head = bytes(data[:8])
    return head in (MAGIC_V4, MAGIC_V5)


#: Largest type section accepted from untrusted bytes. east-c builds a header's type
#: recursively, so a long chain of nested types overflows the C stack and kills the
#: process; a section this size nests at most ~8,000 levels (two bytes per level),
#: far within the stack. Real types are small: IRType's whole section is ~380 bytes.
MAX_TYPE_SECTION = 16 << 10


def _check_type_section(data: bytes | bytearray | memoryview) -> None:
    """Refuse untrusted Beast2 whose type section is too large to parse safely."""
    at = 9 if bytes(data[:8]) == MAGIC_V5 else 8  # v5 has a flags byte first
    size = shift = 0
    for i in range(at, min(at + 10, len(data))):
        byte = data[i]
        size |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    else:
        raise DecodeError("invalid Beast2 header: truncated type section length")
    if size > MAX_TYPE_SECTION:
        raise DecodeError(
            f"invalid Beast2 header: type section of {size} bytes (at most {MAX_TYPE_SECTION})"
        )


# ── decoded size of untrusted bytes ──────────────────────────────────────────

#: Inflate granularity of :func:`value_size` (what it holds of a frame at a time).
_INFLATE_CHUNK = 256 << 10
#: DEFLATE's largest expansion: a 258-byte match per bit pair, about 1032 to 1.
_MAX_DEFLATE_RATIO = 1032


def _varint(data: bytes | memoryview, at: int, what: str) -> tuple[int, int]:
    """The LEB128 varint at ``at`` and the position after it (:func:`small.read_varint`)."""
    try:
        return small.read_varint(data, at)
    except small.NotSmall:
        raise DecodeError(f"invalid Beast2 data: truncated or overlong {what}") from None


def value_size(data: bytes | memoryview, limit: int) -> int:
    """How many bytes the value stream of Beast2 ``data`` decodes from, refused past ``limit``.

    A v5 value is a sequence of frames (``varint codec, varint size, varint
    payload_len, payload``) after the magic, the type section and the source
    map; a deflate frame's payload may inflate a thousandfold, so a 1 MiB body
    can claim a 1 GiB Blob, and east-c decodes it, holding the interpreter lock,
    into memory. This walk reads only the frame headers, inflates each deflate
    payload in bounded chunks (discarding the output) to check it inflates to
    exactly its declared size, and refuses once the total passes ``limit``,
    so the cost of a refusal is bounded by ``limit``, not by the claim. v4 has
    no compression: its stream is at most the data itself.

    Raises:
        ValueTooLarge: the value stream is larger than ``limit`` bytes.
        DecodeError: the framing is malformed (truncated, inconsistent sizes,
            unknown codec or type-section kind).
    """
    if not is_beast2(data):
        raise DecodeError("not Beast2 data (bad magic)")
    if bytes(data[:8]) == MAGIC_V4:
        if len(data) - 8 > limit:
            raise _too_large(len(data) - 8, limit)
        return len(data) - 8
    end = len(data)
    if end >= 9 + 16 and bytes(data[-8:]) == FOOTER_MAGIC:
        (index_at,) = struct.unpack("<Q", bytes(data[-16:-8]))
        if index_at <= end - 16:
            end = index_at
    at = header_size(data)
    total = 0
    while at < end:
        codec, at = _varint(data, at, "frame codec")
        size, at = _varint(data, at, "frame size")
        stored, at = _varint(data, at, "frame length")
        if at + stored > end:
            raise DecodeError("invalid Beast2 data: frame runs past the end of the data")
        if codec == 0 and size != stored:
            raise DecodeError("invalid Beast2 data: stored frame size differs from its length")
        if codec == 1 and size > _MAX_DEFLATE_RATIO * stored + 64:
            raise DecodeError("invalid Beast2 data: a deflate frame claims more than it can hold")
        if codec not in (0, 1):
            raise DecodeError(f"invalid Beast2 data: unsupported frame codec {codec}")
        total += size
        if total > limit:
            raise _too_large(total, limit)
        if codec == 1:
            _check_inflated_size(memoryview(data)[at : at + stored], size)
        at += stored
    return total


def header_size(data: bytes | memoryview) -> int:
    """Position of a v5 blob's first frame (after the type section and the source map).

    Raises:
        DecodeError: the header is truncated or of an unknown kind.
    """
    at = _type_section_end(data)
    size, at = _varint(data, at, "source map length")
    at += size
    if at > len(data):
        raise DecodeError("invalid Beast2 header: truncated")
    return at


def _type_section_end(data: bytes | memoryview) -> int:
    """Position after a v5 blob's type section (a type table, or a well-known type's id)."""
    kind = data[8] if len(data) > 8 else -1
    if kind == 0:  # structural: a length-prefixed type table
        size, at = _varint(data, 9, "type section length")
        return at + size
    if kind == 1:  # a well-known type: its id and an 8-byte hash
        _, at = _varint(data, 9, "well-known type id")
        return at + 8
    raise DecodeError(f"invalid Beast2 header: unsupported type section kind {kind}")


def header_bytes(data: bytes | memoryview) -> bytes:
    """A v5 blob's magic and type section: equal bytes, equal types (another version: all of it).

    Lets a caller that checks many values against declared types (a package's
    function IRs, which all share one header) read and compare each distinct
    header once.

    Raises:
        DecodeError: the header is truncated or of an unknown kind.
    """
    if bytes(data[:8]) != MAGIC_V5:
        return bytes(data)
    at = _type_section_end(data)
    if at > len(data):
        raise DecodeError("invalid Beast2 header: truncated")
    return bytes(data[:at])


def _check_inflated_size(payload: memoryview, declared: int) -> None:
    """Inflate a raw-deflate frame in chunks, refusing it as soon as it outgrows ``declared``."""
    inflater = zlib.decompressobj(-15)
    produced = 0
    pending: bytes | memoryview = payload
    try:
        while True:
            out = inflater.decompress(pending, _INFLATE_CHUNK)
            produced += len(out)
            if produced > declared:
                break
            pending = inflater.unconsumed_tail
            if not pending:
                produced += len(inflater.flush())
                break
    except zlib.error as exc:
        raise DecodeError(f"invalid Beast2 data: corrupt deflate frame ({exc})") from exc
    if produced != declared or not inflater.eof:
        raise DecodeError(
            "invalid Beast2 data: a deflate frame does not inflate to its declared size"
        )


def _too_large(size: int, limit: int) -> ValueTooLarge:
    return ValueTooLarge(
        f"value too large: it decodes to more than {limit} bytes "
        f"(at least {size}); larger values are refused here",
        limit=str(limit),
    )


def _cache_key(east_type: EastType) -> EastType:
    """The type object to look codecs up by: comparing recursive types is slow."""
    if east_type is EastTypeType or east_type is IRType:
        return east_type
    return canonical(east_type)


@lru_cache(maxsize=512)
def _encoder(east_type: EastType) -> Callable[[Any], bytes]:
    return encode_beast2_with_header_for(east_type, version=WRITE_VERSION)  # type: ignore[no-any-return]


@lru_cache(maxsize=512)
def _decoder(east_type: EastType) -> Callable[[Any], Any]:
    return decode_beast2_with_header_for(east_type)  # type: ignore[no-any-return]


def encode(value: EastValue, east_type: EastType) -> bytes:
    """Canonical bytes of ``value`` as type ``east_type``.

    Raises:
        TypeMismatch: the value is not of that type.
    """
    value = exact_datetimes(value, east_type)
    try:
        return bytes(_encoder(_cache_key(east_type))(value))
    except (TypeError, ValueError, OverflowError, KeyError, AttributeError) as exc:
        raise TypeMismatch(
            f"value does not fit type {short_type(east_type)}: {_first_line(exc)}"
        ) from exc


def encode_type(east_type: EastType) -> bytes:
    """Canonical bytes of a type (as a value of ``EastTypeType``): an identity for types."""
    return bytes(_encoder(EastTypeType)(east_type))


def decode(
    data: bytes | memoryview,
    east_type: EastType,
    *,
    trusted: bool = True,
    limit: int | None = None,
    native: bool = False,
) -> EastValue:
    """Decode Beast2 bytes whose header type must be ``east_type`` (or a subtype).

    ``trusted=False`` is for bytes from users or the network: east-c's own
    stderr diagnostics are silenced and only e3's error is raised. ``limit``
    bounds the decoded size (:func:`value_size`), checked before east-c sees
    the bytes.

    The value is made of plain Python containers (:mod:`e3.codec.plain` says
    why). ``native=True`` returns east-py's own C-backed value instead, which
    is cheaper for a value written straight out again (to CSV, Parquet, or
    Beast2) by the caller: it must not outlive the call, nor leave the thread.

    Raises:
        DecodeError: the bytes are not valid Beast2 of that type.
        ValueTooLarge: they decode to more than ``limit`` bytes.
    """
    if not is_beast2(data):
        raise DecodeError("not Beast2 data (bad magic)")
    _check_type_section(data)
    if limit is not None:
        value_size(data, limit)
    try:
        decoder = _decoder(_cache_key(east_type))
        if trusted:
            value = decoder(data)
        else:
            with quiet_native_stderr():
                value = decoder(data)
        # east-py decodes strings lazily: the copy meets a damaged one, if any.
        return value if native else plain(value, east_type)
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError, IndexError) as exc:
        raise DecodeError(f"invalid Beast2 data: {_first_line(exc)}") from exc


def read_type(data: bytes | memoryview, *, trusted: bool = False) -> EastType:
    """The East type recorded in a Beast2 header (self-describing data).

    Raises:
        DecodeError: the bytes are not Beast2 or the header does not parse.
    """
    if not is_beast2(data):
        raise DecodeError("not Beast2 data (bad magic)")
    _check_type_section(data)
    try:
        if trusted:
            return read_beast2_type(bytes(data))
        with quiet_native_stderr():
            return read_beast2_type(bytes(data))
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError, IndexError) as exc:
        raise DecodeError(f"invalid Beast2 header: {_first_line(exc)}") from exc


def decode_any(data: bytes | memoryview, *, trusted: bool = False) -> tuple[EastType, EastValue]:
    """Decode self-describing Beast2: returns ``(type, value)``."""
    east_type = read_type(data, trusted=trusted)
    return east_type, decode(data, east_type, trusted=trusted)


def canonicalize(
    data: bytes | memoryview,
    east_type: EastType | None = None,
    *,
    trusted: bool = False,
    limit: int | None = None,
) -> tuple[EastType, bytes]:
    """Re-encode Beast2 in e3's canonical form.

    With ``east_type`` the data must hold a value of that type (or a subtype)
    and the result carries ``east_type`` in its header; without it the header's
    own type is kept. Returns ``(type, canonical_bytes)``. ``limit`` bounds the
    decoded size (:func:`value_size`), checked before anything is decoded.

    Raises:
        DecodeError: not valid Beast2.
        TypeMismatch: the data's type does not fit ``east_type``.
        ValueTooLarge: the data decodes to more than ``limit`` bytes.
    """
    if limit is not None:
        value_size(data, limit)
    if trusted:
        return _canonicalize(data, east_type)
    with quiet_native_stderr():  # one redirection for the header and the body
        return _canonicalize(data, east_type)


def _canonicalize(data: bytes | memoryview, east_type: EastType | None) -> tuple[EastType, bytes]:
    found = read_type(data, trusted=True)
    target = found if east_type is None else east_type
    # east-py decoders accept subtypes; anything else is a mismatch we report
    # with both types spelled out.
    if (
        east_type is not None
        and not same_type(found, east_type)
        and not is_subtype(found, east_type)
    ):
        raise TypeMismatch(
            f"type mismatch: expected {short_type(east_type)}, got {short_type(found)}"
        )
    value = decode(data, target, trusted=True, native=True)
    return target, encode(value, target)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
