"""Bounded decoding of untrusted Beast2: :func:`e3.codec.beast2.value_size` and ``limit=``.

A deflate frame lets a small body claim (and really inflate to) a huge value; east-c
decodes it into memory while holding the interpreter lock. The walk over the frames
must agree with east-c on every valid encoding (whole, uncompressed, v4, paged,
function values, well-known types), refuse what is over the limit before east-c sees
it, at a cost bounded by the limit, and refuse forged framing.
"""

from __future__ import annotations

import random
import resource
import time
import zlib

import pytest
from east import East
from east.serialization.beast2 import (
    encode_beast2_paged_for,
    encode_beast2_v5_for,
    encode_beast2_with_header_for,
)
from fuzz.bombs import beast2_bomb, leb128
from fuzz.hostile import random_type, random_value

from e3.codec import beast2
from e3.codec.types import (
    ArrayType,
    BlobType,
    FunctionType,
    IntegerType,
    IRType,
    StringType,
    StructType,
)
from e3.errors import DecodeError, ValueTooLarge

MiB = 1 << 20


def encodings() -> list[tuple[str, bytes, int]]:
    """(label, bytes, size of the value stream) of random values in every byte form."""
    rng = random.Random(5)
    out = []
    while len(out) < 1200:
        t = random_type(rng)
        try:
            v = random_value(t, rng)
            whole = beast2.encode(v, t)
        except Exception:
            continue
        plain = encode_beast2_v5_for(t, codec="none")(v)
        size = len(plain) - beast2.header_size(plain) - 3  # one frame: 3 one-byte varints
        out.append((f"whole-{len(out)}", whole, -1))
        if size < 0x80:
            out.append((f"plain-{len(out)}", plain, size))
        out.append((f"v4-{len(out)}", encode_beast2_with_header_for(t, version=4)(v), -1))
        if t.type in ("Array", "Set", "Dict"):
            out.append((f"paged-{len(out)}", encode_beast2_paged_for(t)(v), -1))
    return out


def test_every_valid_encoding_is_measured_and_still_decodes() -> None:
    for label, data, size in encodings():
        measured = beast2.value_size(data, 1 << 30)
        if size >= 0:
            assert measured == size, label
        beast2.decode(data, beast2.read_type(data), trusted=False, limit=measured)
        if measured:
            with pytest.raises(ValueTooLarge):
                beast2.value_size(data, measured - 1)


def test_functions_and_well_known_types_are_measured() -> None:
    f = East.function([IntegerType], IntegerType, lambda b, v: v * 2)
    ir = beast2.encode(f._east_ir, IRType)  # type section kind 1 (a well-known type)
    assert beast2.value_size(ir, MiB) > 0
    fn = encode_beast2_with_header_for(FunctionType([IntegerType], IntegerType))(f)
    assert beast2.value_size(fn, MiB) > 0  # a non-empty source map section
    big = encode_beast2_paged_for(ArrayType(IntegerType))(list(range(300_000)))
    assert beast2.value_size(big, 64 * MiB) > len(big) // 2  # several frames and an index


def test_a_deflate_bomb_is_refused_before_decoding_at_a_cost_bounded_by_the_limit() -> None:
    """A 256 MiB Blob in ~260 KB: refused at a 4 MiB limit in milliseconds, without
    inflating more than the limit's worth (the process's peak memory barely moves)."""
    bomb = beast2_bomb(BlobType, b"", leb128(256 * MiB), 256 * MiB, b"\0")
    assert len(bomb) < 300_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    for call in (
        lambda: beast2.value_size(bomb, 4 * MiB),
        lambda: beast2.decode(bomb, BlobType, trusted=False, limit=4 * MiB),
        lambda: beast2.canonicalize(bomb, BlobType, limit=4 * MiB),
    ):
        with pytest.raises(ValueTooLarge) as info:
            call()
        assert "4194304" in info.value.message and len(info.value.message) < 200
    assert time.monotonic() - t0 < 0.5
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown < 64 * 1024, f"peak memory grew by {grown} KiB"


def test_a_value_within_the_limit_decodes() -> None:
    small = beast2_bomb(StringType, "", leb128(3 * MiB), 3 * MiB, b"a")
    assert beast2.value_size(small, 4 * MiB) == 3 * MiB + len(leb128(3 * MiB))
    assert beast2.decode(small, StringType, trusted=False, limit=4 * MiB) == "a" * (3 * MiB)


def _frame_of(data: bytes) -> tuple[bytes, bytes]:
    """(header, frames) of a v5 blob."""
    at = beast2.header_size(data)
    return data[:at], data[at:]


def _one_frame(codec: int, size: int, payload: bytes) -> bytes:
    header, _ = _frame_of(encode_beast2_v5_for(BlobType, codec="none")(b""))
    return header + leb128(codec) + leb128(size) + leb128(len(payload)) + payload


def test_forged_framing_is_a_decode_error() -> None:
    stream = leb128(1000) + b"\0" * 1000
    packed = zlib.compress(stream, 9, wbits=-15)
    cases = {
        # declares less than it inflates to: a bomb hiding behind a small claim
        "inflates-past-its-claim": _one_frame(1, 10, packed),
        "inflates-short-of-its-claim": _one_frame(1, len(stream) + 5, packed),
        "claims-more-than-deflate-can-hold": _one_frame(1, 1 << 40, packed),
        "stored-size-differs": _one_frame(0, 5, b"\x03abc"),
        "runs-past-the-end": _one_frame(0, 4, b"\x03abc")[:-1],
        "unknown-codec": _one_frame(2, 4, b"\x03abc"),
        "corrupt-deflate": _one_frame(1, len(stream), b"\xff" * 20),
        "truncated-varint": _one_frame(0, 4, b"\x03abc")[:-5] + b"\x80",
    }
    for label, data in cases.items():
        with pytest.raises(DecodeError):
            beast2.value_size(data, 1 << 30)
        assert label


def test_unknown_type_section_kind_and_truncated_headers_are_decode_errors() -> None:
    good = beast2.encode({"a": 1}, StructType([("a", IntegerType)]))
    for data in (
        beast2.MAGIC_V5 + b"\x07" + good[9:],
        good[:10],
        beast2.MAGIC_V5 + b"\x00" + leb128(1 << 40),
        b"not beast2",
    ):
        with pytest.raises(DecodeError):
            beast2.value_size(data, 1 << 30)


def test_v4_is_bounded_by_its_own_size() -> None:
    data = encode_beast2_with_header_for(BlobType, version=4)(b"x" * 5000)
    assert beast2.value_size(data, 1 << 20) <= len(data)
    with pytest.raises(ValueTooLarge):
        beast2.value_size(data, 1000)
