"""Execution status records read without east-py give exactly what east-py gives, or defer to it.

``workspace status`` reads one status record per task, ``e3 log`` and the web
view many more: records e3 wrote (either form, with or without the worker that
ran them) are read by ``e3.codec.small``; east-py stays the judge of anything
else, so damaged bytes must end as east-py would have them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from e3.codec import beast2, small
from e3.errors import DecodeError
from e3.records import execution
from e3.records.execution import ExecutionStatus, ExecutionStatusType, ExecutionStatusWorkerType
from tests_support import decoded_or_error, same_outcome

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
HASHES = st.lists(st.text("0123456789abcdef", min_size=64, max_size=64), max_size=40)
TIMES = st.integers(-(10**12), 10**13).map(
    lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)
INTS = st.integers(-(2**63), 2**63 - 1)
WORKERS = st.one_of(st.none(), TEXT)


@st.composite
def statuses(draw: st.DrawFn) -> ExecutionStatus:
    state = draw(st.sampled_from(["running", "success", "failed", "error"]))
    base = (draw(TEXT), tuple(draw(HASHES)), draw(TIMES))
    worker = draw(WORKERS)
    if state == "running":
        return ExecutionStatus(
            "running", *base, pid=draw(INTS), pid_start_time=draw(INTS),
            boot_id=draw(TEXT), worker=worker,
        )  # fmt: skip
    done = draw(TIMES)
    if state == "success":
        return ExecutionStatus("success", *base, done, output_hash=draw(TEXT), worker=worker)
    if state == "failed":
        return ExecutionStatus("failed", *base, done, exit_code=draw(INTS), worker=worker)
    return ExecutionStatus(
        "error", *base, done, message=draw(st.text(max_size=3000)), worker=worker
    )


def _by_east_py(data: bytes) -> object:
    """The decoding east-py gives, trying the worker form first as ``execution.decode`` does."""

    def decode() -> ExecutionStatus:
        try:
            value = beast2.decode(data, ExecutionStatusWorkerType, trusted=False)
        except DecodeError:
            value = beast2.decode(data, ExecutionStatusType, trusted=False)
        return execution.from_east(value)

    return decoded_or_error(decode)


def _by_e3(data: bytes) -> object:
    return decoded_or_error(lambda: execution.decode(data))


@given(statuses())
def test_a_status_reads_the_same_without_east_py(status: ExecutionStatus) -> None:
    data = execution.encode(status)
    header, with_worker = next(h for h in execution._headers() if data.startswith(h[0]))
    assert with_worker == (status.worker is not None)
    direct = execution._read(small.Reader(small.stream(data, header)), with_worker)
    assert direct == _by_east_py(data)
    assert execution.decode(data) == direct


@given(statuses(), st.data())
def test_damaged_status_bytes_end_as_east_py_has_them(
    status: ExecutionStatus, data: st.DataObject
) -> None:
    raw = bytearray(execution.encode(status))
    if data.draw(st.booleans(), label="flip"):
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw[at] ^= data.draw(st.integers(1, 255), label="bits")
    else:
        del raw[data.draw(st.integers(0, len(raw)), label="cut") :]
    damaged = bytes(raw)
    assert same_outcome(_by_e3(damaged), _by_east_py(damaged))


def test_a_record_of_the_reference_form_is_read_directly() -> None:
    """Local executions keep the reference's type: the header without ``worker``."""
    at = datetime(2026, 12, 3, 17, 0, 0, 123000, tzinfo=UTC)
    status = ExecutionStatus("success", "e1", ("a" * 64,), at, at, output_hash="b" * 64)
    data = execution.encode(status)
    assert b"worker" not in data
    header = dict((w, h) for h, w in execution._headers())[False]
    assert execution._read(small.Reader(small.stream(data, header)), False) == status


@pytest.mark.parametrize(
    "stream",
    [
        b"\x04",  # no such case
        b"\x00\x01e\x00\x00\x00\x00\x00\x00",  # an error record with a byte after it
        b"\x03\x01e\x01\x00",  # a back reference where the array is written whole
        b"\x01\x01e\x00\x00\x00\x00" + b"\xff" * 9 + b"\x7f",  # an exit code over 64 bits
    ],
)
def test_the_reader_gives_up_on_what_it_does_not_take(stream: bytes) -> None:
    with pytest.raises(small.NotSmall):
        execution._read(small.Reader(stream), False)
