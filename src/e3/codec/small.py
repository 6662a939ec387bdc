"""Reading and writing Beast2 records of a known type without east-py.

A fully cached ``e3 start`` of 10,000 tasks reads about 20,000 dataset refs:
each a hundred-odd bytes, always of one type, with a header e3 itself wrote.
Through east-py each costs a decoder call and a walk over east-py's value
objects (about 13 µs); the value stream of such a record is a few varints and
strings, which this module reads directly.

It reads only what it was written for: a caller passes the exact header its
own encoder writes (magic, type section, source map), and anything else
(another header, an unknown frame codec, a malformed or trailing byte) makes
:func:`stream` or the :class:`Reader` give up with :class:`NotSmall`, so the
caller falls back to east-py, which then accepts or refuses the bytes as
before.

The writing half serves the one large record e3 writes on every run: the run
record, with an entry per task (2.2 MB of value stream at 10,000 tasks).
east-py builds it from a Python value in about 80 ms; the writers below give the
same value stream from strings and integers in about a quarter of that. Imports
only the standard library.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

#: Largest value stream read here: refs are ~100 bytes; anything bigger goes to east-py.
MAX_STREAM = 64 << 10


class NotSmall(Exception):
    """The bytes are not what this reader handles; decode them with east-py instead."""


def read_varint(data: bytes | memoryview, at: int) -> tuple[int, int]:
    """The unsigned LEB128 varint at ``at`` and the position after it.

    Raises:
        NotSmall: truncated or longer than ten bytes.
    """
    value = shift = 0
    for i in range(at, min(at + 10, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i + 1
    raise NotSmall("truncated or overlong varint")


def stream(data: bytes, header: bytes, *, limit: int = MAX_STREAM) -> bytes:
    """The value stream of ``data`` (frames joined, deflate ones inflated) after ``header``.

    Raises:
        NotSmall: ``data`` does not start with ``header``, has a frame this
            reader does not take, or a stream over ``limit`` bytes.
    """
    if not data.startswith(header):
        raise NotSmall("another header")
    at, end = len(header), len(data)
    # The usual case, first: one stored frame under 128 bytes (three one-byte varints).
    if end - at >= 3 and data[at] == 0 and data[at + 1] == data[at + 2] == end - at - 3 < 0x80:
        return data[at + 3 :]
    parts: list[bytes] = []
    total = 0
    while at < end:
        codec, at = read_varint(data, at)
        size, at = read_varint(data, at)
        stored, at = read_varint(data, at)
        total += size
        if at + stored > end or total > limit:
            raise NotSmall("frame past the end, or too large")
        payload = data[at : at + stored]
        at += stored
        if codec == 0 and size == stored:
            parts.append(payload)
        elif codec == 1:
            inflater = zlib.decompressobj(-15)
            try:
                plain = inflater.decompress(payload, size + 1)
            except zlib.error as exc:
                raise NotSmall("corrupt deflate frame") from exc
            if len(plain) != size or not inflater.eof or inflater.unused_data:
                raise NotSmall("deflate frame of another size")
            parts.append(plain)
        else:
            raise NotSmall("frame codec")
    return b"".join(parts)


def head(data: bytes, header: bytes, size: int) -> bytes:
    """The start of the value stream of ``data``: its first ``size`` bytes, or all there is.

    For a field near the start of a large record: only the first frame is read,
    and of a deflate frame only as much as ``size`` needs is inflated.

    Raises:
        NotSmall: another header, a frame past the end, a codec or damage this
            reader does not take.
    """
    if not data.startswith(header):
        raise NotSmall("another header")
    codec, at = read_varint(data, len(header))
    length, at = read_varint(data, at)
    stored, at = read_varint(data, at)
    if at + stored > len(data):
        raise NotSmall("frame past the end")
    payload = data[at : at + stored]
    if codec == 0 and length == stored:
        return payload[:size]
    if codec == 1:
        try:
            return zlib.decompressobj(-15).decompress(payload, size)
        except zlib.error as exc:
            raise NotSmall("corrupt deflate frame") from exc
    raise NotSmall("frame codec")


class Reader:
    """A cursor over a value stream of strings, integers, variants, string arrays and dicts."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def varint(self) -> int:
        """An unsigned varint (a variant's case index, a length, a count)."""
        at = self.at
        if at < len(self.data) and self.data[at] < 0x80:  # one byte: nearly always
            self.at = at + 1
            return self.data[at]
        value, self.at = read_varint(self.data, at)
        return value

    def string(self) -> str:
        """A String: its byte length, then UTF-8."""
        n = self.varint()
        end = self.at + n
        if end > len(self.data):
            raise NotSmall("string past the end")
        try:
            text = self.data[self.at : end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotSmall("not UTF-8") from exc
        self.at = end
        return text

    def string_dict(self) -> dict[str, str]:
        """A ``Dict<String, String>`` written whole (a NEW tag, then runs of entries).

        Keys must ascend strictly in East's order for strings (by code point),
        as east-py requires of what it decodes; otherwise east-py decides.
        """
        if self.varint() != 0:  # 1 would be a back reference to an earlier container
            raise NotSmall("shared container")
        out: dict[str, str] = {}
        last: str | None = None
        while n := self.varint():
            for _ in range(n):
                key = self.string()
                if last is not None and key <= last:
                    raise NotSmall("keys out of order")
                last = key
                out[key] = self.string()
        return out

    def zigzag(self) -> int:
        """A signed varint (an Integer, or a DateTime's milliseconds since the epoch)."""
        n = self.varint()
        if n >> 64:  # past 64 bits: east-py's reading of it (a wrapped i64) is the one to give
            raise NotSmall("integer over 64 bits")
        return (n >> 1) ^ -(n & 1)

    def string_array(self) -> list[str]:
        """An ``Array<String>`` written whole (a NEW tag, then runs of elements)."""
        if self.varint() != 0:
            raise NotSmall("shared container")
        out: list[str] = []
        while n := self.varint():
            out.extend(self.string() for _ in range(n))
        return out

    def end(self) -> None:
        """Every byte was read (anything left over is for east-py to judge)."""
        if self.at != len(self.data):
            raise NotSmall("bytes after the value")


# ── writing ──────────────────────────────────────────────────────────────────

#: A frame is deflated only from this size on, and only if that makes it strictly
#: shorter (the format's rule for writers).
_MIN_DEFLATE = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def varint(n: int) -> bytes:
    """``n`` (0 or more) as an unsigned LEB128 varint."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def signed(n: int) -> bytes:
    """An Integer (or DateTime milliseconds) as a zigzag varint.

    Raises:
        NotSmall: outside 64 bits, where East's Integer ends.
    """
    if not -(1 << 63) <= n < 1 << 63:
        raise NotSmall("integer over 64 bits")
    return varint((n << 1) ^ (n >> 63))


def string(text: str) -> bytes:
    """A String: its UTF-8 byte length, then the bytes."""
    data = text.encode()
    return varint(len(data)) + data


def string_dict(entries: Mapping[str, str]) -> bytes:
    """A ``Dict<String, String>``: a NEW tag, one run of every entry in key order, the end."""
    if not entries:
        return b"\x00\x00"
    parts = [b"\x00", varint(len(entries))]
    for key in sorted(entries):
        parts.append(string(key))
        parts.append(string(entries[key]))
    parts.append(b"\x00")
    return b"".join(parts)


def epoch_ms(value: datetime) -> int:
    """A datetime as East DateTime milliseconds: truncated toward zero, naive taken as UTC."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return delta // _MS if delta >= timedelta(0) else -((-delta) // _MS)


def framed(header: bytes, stream: bytes) -> bytes:
    """A whole Beast2 value: ``header``, then ``stream`` as one frame.

    The frame is raw DEFLATE (zlib, level 1) where that is shorter, which any
    Beast2 reader inflates; it is not the deterministic DEFLATE east-py writes,
    so the bytes differ from east-py's, and this suits only records that are
    not content-addressed (no hash names them).
    """
    if len(stream) >= _MIN_DEFLATE:
        deflater = zlib.compressobj(1, zlib.DEFLATED, -15)
        packed = deflater.compress(stream) + deflater.flush()
        if len(packed) < len(stream):
            return b"".join((header, b"\x01", varint(len(stream)), varint(len(packed)), packed))
    return b"".join((header, b"\x00", varint(len(stream)), varint(len(stream)), stream))
