"""Run records written without east-py hold exactly the value east-py would write.

``records.dataflow.encode`` builds the value stream itself (the final record of a
10,000-task run is written while ``e3 start`` waits) and deflates it with zlib,
not with east-py's deterministic DEFLATE. So the bytes may differ from east-py's,
but the value stream inside must be east-py's, byte for byte, and east-py must
read the record back as the same run: any status, unicode names, empty and large
dicts, DateTimes on either side of 1970, counts up to 64 bits. The next start
reads each task's execution id back without east-py, from either writer's bytes.
"""

from __future__ import annotations

import dataclasses
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from e3.codec import beast2, small
from e3.records import dataflow
from e3.records.dataflow import DataflowRun, DataflowRunType, RunSummary, TaskExecution

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
HASHES = st.text("0123456789abcdef", min_size=64, max_size=64)
VERSIONS = st.dictionaries(TEXT, HASHES, max_size=4)
TIMES = st.integers(-(10**12), 10**13).map(
    lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)
COUNTS = st.integers(-(2**63), 2**63 - 1)
TASKS = st.dictionaries(
    TEXT, st.builds(TaskExecution, TEXT, st.booleans(), VERSIONS, COUNTS), max_size=12
)


@st.composite
def runs(draw: st.DrawFn) -> DataflowRun:
    status = draw(st.sampled_from(["running", "completed", "failed", "cancelled", "interrupted"]))
    failed = status == "failed"
    return DataflowRun(
        run_id=draw(TEXT),
        workspace=draw(TEXT),
        package_ref=draw(TEXT),
        started_at=draw(TIMES),
        status=status,
        completed_at=draw(st.one_of(st.none(), TIMES)),
        failed_task=draw(st.one_of(st.none(), TEXT.filter(bool))) if failed else None,
        error=draw(TEXT) if failed or status == "interrupted" else None,
        input_versions=draw(VERSIONS),
        output_versions=draw(st.one_of(st.none(), VERSIONS)),
        task_executions=draw(TASKS),
        summary=RunSummary(*(draw(COUNTS) for _ in range(6))),
    )


def _stream(data: bytes) -> bytes:
    """The value stream of a one-frame Beast2 value, inflated."""
    at = beast2.header_size(data)
    codec, at = small.read_varint(data, at)
    size, at = small.read_varint(data, at)
    _, at = small.read_varint(data, at)
    stream = zlib.decompress(data[at:], -15) if codec == 1 else data[at:]
    assert len(stream) == size
    return stream


@given(runs())
def test_a_run_record_holds_east_py_s_value_stream(run: DataflowRun) -> None:
    ours = dataflow.encode(run)
    east_py = beast2.encode(dataflow.to_east(run), DataflowRunType)
    assert ours[: beast2.header_size(ours)] == east_py[: beast2.header_size(east_py)]
    assert _stream(ours) == _stream(east_py)
    back = dataflow.decode(ours)
    if run.status == "failed" and run.failed_task is None:
        assert back.failed_task is None
    assert back == dataflow.decode(east_py)


@given(runs())
def test_the_execution_ids_of_a_record_read_directly_are_its_tasks(run: DataflowRun) -> None:
    expected = {name: t.execution_id for name, t in run.task_executions.items()}
    assert dataflow.execution_ids(dataflow.encode(run)) == expected
    east_py = beast2.encode(dataflow.to_east(run), DataflowRunType)  # as older e3 wrote them
    assert dataflow.execution_ids(east_py) == expected


@given(runs(), st.data())
def test_damaged_records_give_ids_or_give_up(run: DataflowRun, data: st.DataObject) -> None:
    """A hint reader may read wrong ids from damage (a path check stops them), never crash."""
    blob = bytearray(dataflow.encode(run))
    at = data.draw(st.integers(0, len(blob) - 1))
    blob[at] ^= data.draw(st.integers(1, 255))
    try:
        ids = dataflow.execution_ids(bytes(blob[: data.draw(st.integers(0, len(blob)))]))
    except small.NotSmall:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in ids.items())


def test_a_large_record_is_deflated_and_east_py_reads_it_back() -> None:
    tasks = {
        f"task_{i:05d}": TaskExecution(f"{i:032x}", i % 3 == 0, {f".tasks.t{i}": "ab" * 32}, i)
        for i in range(3000)
    }
    run = DataflowRun(
        "run-big", "ws", "big@1.0.0", datetime(2026, 12, 3, 23, 59, 59, 999000, tzinfo=UTC),
        "completed", datetime(2026, 12, 4, tzinfo=UTC), task_executions=tasks,
        summary=RunSummary(total=3000, completed=3000, cached=1000),
    )  # fmt: skip
    data = dataflow.encode(run)
    at = beast2.header_size(data)
    assert data[at] == 1  # a deflate frame
    assert len(data) < len(_stream(data)) / 2
    assert beast2.decode(data, DataflowRunType)["taskExecutions"]["task_00003"]["cached"] is True
    assert dataflow.decode(data) == run


@pytest.mark.parametrize("n", [-(2**63) - 1, 2**63])
def test_counts_past_64_bits_are_refused_as_east_py_refuses_them(n: int) -> None:
    with pytest.raises(small.NotSmall):
        small.signed(n)
    run = DataflowRun(
        "r", "ws", "p@1", datetime(2026, 1, 1, tzinfo=UTC), "completed", summary=RunSummary(n)
    )
    with pytest.raises(Exception) as ours:
        dataflow.encode(run)
    with pytest.raises(Exception) as theirs:
        beast2.encode(dataflow.to_east(run), DataflowRunType)
    assert type(ours.value) is type(theirs.value)


@given(st.datetimes(timezones=st.just(UTC)) | st.datetimes())
def test_epoch_milliseconds_truncate_toward_zero_as_east_does(value: datetime) -> None:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    whole = epoch + timedelta(milliseconds=small.epoch_ms(value))
    gap = aware - whole if aware >= epoch else whole - aware
    assert timedelta(0) <= gap < timedelta(milliseconds=1)


@given(runs())
def test_the_status_read_from_the_head_of_a_record_is_east_py_s(run: DataflowRun) -> None:
    for data in (dataflow.encode(run), beast2.encode(dataflow.to_east(run), DataflowRunType)):
        assert dataflow.decode_status(data) == dataflow.decode(data).status


def test_a_status_past_what_the_head_holds_is_read_by_east_py() -> None:
    run = DataflowRun(
        "r", "ws", "p@1", datetime(2026, 1, 1, tzinfo=UTC), "failed", failed_task="t",
        error="x" * (40 << 10),
    )  # fmt: skip
    assert dataflow.decode_status(dataflow.encode(run)) == "failed"
    assert dataflow.decode_status(dataflow.encode(dataclasses.replace(run, failed_task=None))) == (
        "failed"
    )
