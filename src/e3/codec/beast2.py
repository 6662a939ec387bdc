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
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from east import is_subtype
from east.serialization.beast2 import (
    decode_beast2_with_header_for,
    encode_beast2_with_header_for,
    read_beast2_type,
)

from e3.codec._datetimes import exact_datetimes
from e3.codec.types import (
    EastType,
    EastTypeType,
    EastValue,
    IRType,
    canonical,
    same_type,
    short_type,
)
from e3.errors import DecodeError, TypeMismatch

#: The magic of Beast2 v4 and v5 (``0x89 'East' CR LF`` + version byte).
MAGIC_PREFIX = b"\x89East\r\n"
MAGIC_V4 = MAGIC_PREFIX + b"\x04"
MAGIC_V5 = MAGIC_PREFIX + b"\x05"
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


def decode(data: bytes | memoryview, east_type: EastType, *, trusted: bool = True) -> EastValue:
    """Decode Beast2 bytes whose header type must be ``east_type`` (or a subtype).

    ``trusted=False`` is for bytes from users or the network: east-c's own
    stderr diagnostics are silenced and only e3's error is raised.

    Raises:
        DecodeError: the bytes are not valid Beast2 of that type.
    """
    if not is_beast2(data):
        raise DecodeError("not Beast2 data (bad magic)")
    _check_type_section(data)
    try:
        decoder = _decoder(_cache_key(east_type))
        if trusted:
            return decoder(data)
        with quiet_native_stderr():
            return decoder(data)
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
    data: bytes | memoryview, east_type: EastType | None = None, *, trusted: bool = False
) -> tuple[EastType, bytes]:
    """Re-encode Beast2 in e3's canonical form.

    With ``east_type`` the data must hold a value of that type (or a subtype)
    and the result carries ``east_type`` in its header; without it the header's
    own type is kept. Returns ``(type, canonical_bytes)``.

    Raises:
        DecodeError: not valid Beast2.
        TypeMismatch: the data's type does not fit ``east_type``.
    """
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
    value = decode(data, target, trusted=True)
    return target, encode(value, target)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
