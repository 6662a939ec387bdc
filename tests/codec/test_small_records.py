"""Dataset refs read without east-py give exactly what east-py gives, or defer to it.

``e3.codec.small`` reads refs e3 wrote (a fully cached run reads two per task);
east-py stays the judge of everything else. Random refs (any kind, unicode
keys, long version vectors that make deflate frames and multi-byte lengths)
must read the same both ways, and any damage to their bytes must end as
east-py would have it: the same ref, or a ``DecodeError``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from e3.codec import beast2, small
from e3.records import dataset_ref
from e3.records.dataset_ref import DatasetRef, DatasetRefType
from tests_support import decoded_or_error, same_outcome

HASHES = st.text("0123456789abcdef", min_size=64, max_size=64)
KEYS = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
VERSIONS = st.dictionaries(KEYS, st.one_of(HASHES, st.text(max_size=300)), max_size=30)
REFS = st.one_of(
    st.just(DatasetRef.unassigned()),
    st.builds(lambda v: DatasetRef("null", None, v), VERSIONS),
    st.builds(DatasetRef.of, st.one_of(HASHES, st.text(max_size=2000)), VERSIONS),
)


def _by_east_py(data: bytes) -> object:
    return decoded_or_error(
        lambda: dataset_ref.from_east(beast2.decode(data, DatasetRefType, trusted=False))
    )


def _by_e3(data: bytes) -> object:
    return decoded_or_error(lambda: dataset_ref.decode(data))


@given(REFS)
def test_a_ref_reads_the_same_without_east_py(ref: DatasetRef) -> None:
    data = dataset_ref.encode(ref)
    got = dataset_ref._read(small.stream(data, dataset_ref._header()))
    assert got == ref == _by_east_py(data)
    assert dataset_ref.decode(data) == ref


@given(REFS, st.data())
def test_damaged_ref_bytes_end_as_east_py_has_them(ref: DatasetRef, data: st.DataObject) -> None:
    raw = bytearray(dataset_ref.encode(ref))
    cut = data.draw(st.integers(0, len(raw)), label="cut")
    if data.draw(st.booleans(), label="flip"):
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw[at] ^= data.draw(st.integers(1, 255), label="bits")
        damaged = bytes(raw)
    else:
        damaged = bytes(raw[:cut])
    assert same_outcome(_by_e3(damaged), _by_east_py(damaged))


def test_a_large_version_vector_makes_a_deflate_frame_that_is_read_directly() -> None:
    ref = DatasetRef.of("a" * 64, {f"inputs.x{i:03}": "b" * 64 for i in range(50)})
    data = dataset_ref.encode(ref)
    at = len(dataset_ref._header())
    assert data[at] == 1  # deflate
    assert dataset_ref._read(small.stream(data, dataset_ref._header())) == ref


@pytest.mark.parametrize(
    "stream",
    [
        b"\x03",  # no such case
        b"\x01\x00",  # a byte after the value
        b"\x02\x02ab\x01\x00",  # a back reference where a dict is written whole
        b"\x02\x02ab\x00\x02\x01b\x01x\x01a\x01y\x00",  # keys out of order
        b"\x02\x05ab",  # a string past the end
    ],
)
def test_the_reader_gives_up_on_what_it_does_not_take(stream: bytes) -> None:
    with pytest.raises(small.NotSmall):
        dataset_ref._read(stream)
