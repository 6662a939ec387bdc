"""Reading small Beast2 records of a known type without east-py.

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
before. Imports only the standard library.
"""

from __future__ import annotations

import zlib

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


def stream(data: bytes, header: bytes) -> bytes:
    """The value stream of ``data`` (frames joined, deflate ones inflated) after ``header``.

    Raises:
        NotSmall: ``data`` does not start with ``header``, has a frame this
            reader does not take, or a stream over :data:`MAX_STREAM` bytes.
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
        if at + stored > end or total > MAX_STREAM:
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
