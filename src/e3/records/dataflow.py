"""Dataflow run records: the history of ``e3 start`` on a workspace.

Stored at ``dataflows/<ws>/<runId>.beast2``::

    DataflowRun = Struct {
      runId, workspaceName, packageRef: String, startedAt: DateTime,
      completedAt: Option<DateTime>,
      status: Variant { cancelled: {}, completed: {}, failed: {failedTask, error}, running: {} },
              (a run whose engine died is failed{failedTask: "", error: "interrupted: …"})
      inputVersions: Dict<String, String>,
      outputVersions: Option<Dict<String, String>>,
      taskExecutions: Dict<String, {executionId, cached, outputVersions, executionCount}>,
      summary: {total, completed, cached, failed, skipped, reexecuted},
    }
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from e3.codec import beast2, small
from e3.codec.types import (
    BooleanType,
    DateTimeType,
    DictType,
    EastValue,
    IntegerType,
    OptionType,
    StringType,
    StructType,
    VariantType,
    variant,
)
from e3.records._util import as_utc, from_option, to_option

_VV = DictType(StringType, StringType)
_Empty = StructType([])
RunStatusType = VariantType(
    [
        ("cancelled", _Empty),
        ("completed", _Empty),
        ("failed", StructType([("failedTask", StringType), ("error", StringType)])),
        ("running", _Empty),
    ]
)
TaskExecutionType = StructType(
    [
        ("executionId", StringType),
        ("cached", BooleanType),
        ("outputVersions", _VV),
        ("executionCount", IntegerType),
    ]
)
RunSummaryType = StructType(
    [
        ("total", IntegerType),
        ("completed", IntegerType),
        ("cached", IntegerType),
        ("failed", IntegerType),
        ("skipped", IntegerType),
        ("reexecuted", IntegerType),
    ]
)
DataflowRunType = StructType(
    [
        ("runId", StringType),
        ("workspaceName", StringType),
        ("packageRef", StringType),
        ("startedAt", DateTimeType),
        ("completedAt", OptionType(DateTimeType)),
        ("status", RunStatusType),
        ("inputVersions", _VV),
        ("outputVersions", OptionType(_VV)),
        ("taskExecutions", DictType(StringType, TaskExecutionType)),
        ("summary", RunSummaryType),
    ]
)

RunState = Literal["running", "completed", "failed", "cancelled", "interrupted"]
#: ``interrupted`` is stored as ``failed`` with no failed task and this error prefix, so
#: the record keeps the reference's four status cases.
INTERRUPTED = "interrupted: the engine stopped before the run finished"


@dataclass(frozen=True)
class TaskExecution:
    """Which execution produced a task's output in a run."""

    execution_id: str
    cached: bool
    output_versions: dict[str, str] = field(default_factory=dict)
    execution_count: int = 1


@dataclass(frozen=True)
class RunSummary:
    """Task counts of a run."""

    total: int = 0
    completed: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    reexecuted: int = 0


@dataclass(frozen=True)
class DataflowRun:
    """One ``e3 start`` of a workspace."""

    run_id: str
    workspace: str
    package_ref: str
    started_at: datetime
    status: RunState
    completed_at: datetime | None = None
    failed_task: str | None = None
    error: str | None = None
    input_versions: dict[str, str] = field(default_factory=dict)
    output_versions: dict[str, str] | None = None
    task_executions: dict[str, TaskExecution] = field(default_factory=dict)
    summary: RunSummary = field(default_factory=RunSummary)


def to_east(run: DataflowRun) -> EastValue:
    """As an East value of :data:`DataflowRunType`."""
    if run.status == "interrupted":
        status = variant("failed", {"failedTask": "", "error": run.error or INTERRUPTED})
    elif run.status == "failed":
        status = variant("failed", {"failedTask": run.failed_task or "", "error": run.error or ""})
    else:
        status = variant(run.status, {})
    s = run.summary
    return {
        "runId": run.run_id,
        "workspaceName": run.workspace,
        "packageRef": run.package_ref,
        "startedAt": run.started_at,
        "completedAt": to_option(run.completed_at),
        "status": status,
        "inputVersions": dict(run.input_versions),
        "outputVersions": to_option(
            None if run.output_versions is None else dict(run.output_versions)
        ),
        "taskExecutions": {
            name: {
                "executionId": t.execution_id,
                "cached": t.cached,
                "outputVersions": dict(t.output_versions),
                "executionCount": t.execution_count,
            }
            for name, t in run.task_executions.items()
        },
        "summary": {
            "total": s.total,
            "completed": s.completed,
            "cached": s.cached,
            "failed": s.failed,
            "skipped": s.skipped,
            "reexecuted": s.reexecuted,
        },
    }


def from_east(value: EastValue) -> DataflowRun:
    """Inverse of :func:`to_east`."""
    status = value["status"]
    completed = from_option(value["completedAt"])
    outputs = from_option(value["outputVersions"])
    s = value["summary"]
    state = _state(status)
    return DataflowRun(
        run_id=str(value["runId"]),
        workspace=str(value["workspaceName"]),
        package_ref=str(value["packageRef"]),
        started_at=as_utc(value["startedAt"]),
        status=state,
        completed_at=None if completed is None else as_utc(completed),
        failed_task=str(status.value["failedTask"]) or None if status.type == "failed" else None,
        error=str(status.value["error"]) if status.type == "failed" else None,
        input_versions={str(k): str(v) for k, v in value["inputVersions"].items()},
        output_versions=None if outputs is None else {str(k): str(v) for k, v in outputs.items()},
        task_executions={
            str(k): TaskExecution(
                str(t["executionId"]),
                bool(t["cached"]),
                {str(a): str(b) for a, b in t["outputVersions"].items()},
                int(t["executionCount"]),
            )
            for k, t in value["taskExecutions"].items()
        },
        summary=RunSummary(
            int(s["total"]),
            int(s["completed"]),
            int(s["cached"]),
            int(s["failed"]),
            int(s["skipped"]),
            int(s["reexecuted"]),
        ),
    )


def encode(run: DataflowRun) -> bytes:
    """Bytes of a run record.

    Written by :mod:`e3.codec.small`: the same value stream as east-py's, built
    about four times faster (the final record of a 10,000-task run is written
    while ``e3 start`` waits), under a zlib-deflated frame, which east-py reads
    as it reads its own. Run records are named by run id, never by a hash of
    their bytes, so bytes that differ from east-py's for the same value harm no
    identity. A value the direct writer cannot hold (an integer past 64 bits,
    a string that is not Unicode text) goes to east-py, which refuses it.
    """
    try:
        return small.framed(_header(), _stream(run))
    except (small.NotSmall, UnicodeEncodeError):
        return beast2.encode(to_east(run), DataflowRunType)


#: The status cases by their index in the stream (East orders a variant's cases by name).
_CASE_NAMES = ("cancelled", "completed", "failed", "running")
_CASE_BYTES = {name: bytes((i,)) for i, name in enumerate(_CASE_NAMES)}


def _stream(run: DataflowRun) -> bytes:
    """The value stream of ``run``: the fields of :data:`DataflowRunType` in its order."""
    string, signed, string_dict = small.string, small.signed, small.string_dict
    parts = [
        string(run.run_id),
        string(run.workspace),
        string(run.package_ref),
        signed(small.epoch_ms(run.started_at)),
        b"\x00" if run.completed_at is None else b"\x01" + signed(small.epoch_ms(run.completed_at)),
    ]
    if run.status == "interrupted":
        parts += [_CASE_BYTES["failed"], string(""), string(run.error or INTERRUPTED)]
    elif run.status == "failed":
        parts += [_CASE_BYTES["failed"], string(run.failed_task or ""), string(run.error or "")]
    else:
        parts.append(_CASE_BYTES[run.status])
    parts.append(string_dict(run.input_versions))
    outputs = run.output_versions
    parts.append(b"\x00" if outputs is None else b"\x01" + string_dict(outputs))
    tasks = run.task_executions
    parts.append(b"\x00")  # a new container: runs of entries (here one), then a zero
    if tasks:
        parts.append(small.varint(len(tasks)))
        for name in sorted(tasks):
            t = tasks[name]
            parts += [
                string(name),
                string(t.execution_id),
                b"\x01" if t.cached else b"\x00",
                string_dict(t.output_versions),
                signed(t.execution_count),
            ]
    parts.append(b"\x00")
    s = run.summary
    counts = (s.total, s.completed, s.cached, s.failed, s.skipped, s.reexecuted)
    parts.extend(signed(n) for n in counts)
    return b"".join(parts)


#: Largest run record read for its execution ids: 64 MiB of value stream, some 300,000 tasks.
MAX_IDS_STREAM = 64 << 20


def execution_ids(data: bytes) -> dict[str, str]:
    """Each task's execution id in a run record e3 wrote, read without east-py.

    The next ``e3 start`` of the workspace looks up each task's result where the
    last run found it, before listing the task's attempts (see
    :meth:`e3.dataflow.drive.RunLoop`): 30 ms for a 10,000-task record, where
    east-py's whole decoding takes 80.

    Raises:
        small.NotSmall: not a record this reader takes (another header, a shared
            container, damage); the caller goes without.
    """
    r = small.Reader(small.stream(data, _header(), limit=MAX_IDS_STREAM))
    _read_to_status(r)
    r.string_dict()  # inputVersions
    if r.varint():  # outputVersions
        r.string_dict()
    if r.varint() != 0:
        raise small.NotSmall("shared container")
    ids: dict[str, str] = {}
    while n := r.varint():
        for _ in range(n):
            name, execution_id = r.string(), r.string()
            r.at += 1  # cached
            r.string_dict()  # outputVersions
            r.zigzag()  # executionCount
            ids[name] = execution_id
    return ids


@functools.cache
def _header() -> bytes:
    """The magic, type section and source map east-py writes for :data:`DataflowRunType`."""
    sample = DataflowRun("", "", "", datetime(1970, 1, 1, tzinfo=UTC), "running")
    data = beast2.encode(to_east(sample), DataflowRunType)
    return data[: beast2.header_size(data)]


def decode_status(data: bytes) -> RunState:
    """Only a record's status: what every start checks of the newest record.

    The status is a record's sixth field, within its first few hundred bytes:
    read directly from the start of the value stream (:func:`small.head`), it
    costs microseconds where east-py decodes the whole record (13 ms for 10,000
    tasks). Bytes past the status are not looked at, so a record damaged further
    on still gives its status; :func:`decode` judges the rest.
    """
    with contextlib.suppress(small.NotSmall):
        return _read_to_status(small.Reader(small.head(data, _header(), _STATUS_WITHIN)))
    return _state(beast2.decode(data, DataflowRunType, trusted=False, native=True)["status"])


#: How much of a value stream :func:`decode_status` inflates: its status and then some.
_STATUS_WITHIN = 16 << 10


def _read_to_status(r: small.Reader) -> RunState:
    """Read a record's value stream up to and including its status; the status."""
    for _ in range(3):  # runId, workspaceName, packageRef
        r.string()
    r.zigzag()  # startedAt
    if r.varint():  # completedAt
        r.zigzag()
    case = r.varint()
    if case >= len(_CASE_NAMES):
        raise small.NotSmall("variant case")
    failed = (r.string(), r.string()) if _CASE_NAMES[case] == "failed" else ("", "")
    return _state_of(_CASE_NAMES[case], *failed)


def _state(status: Any) -> RunState:
    """:func:`_state_of` an East status value (east-py's, or a plain variant)."""
    if status.type != "failed":
        return _state_of(str(status.type), "", "")
    return _state_of("failed", str(status.value["failedTask"]), str(status.value["error"]))


def _state_of(case: str, failed_task: str, error: str) -> RunState:
    """The status case; ``interrupted`` told apart from ``failed`` (:data:`INTERRUPTED`)."""
    if case != "failed":
        return case  # type: ignore[return-value]
    is_interrupted = not failed_task and error.startswith(INTERRUPTED.split(":")[0] + ":")
    return "interrupted" if is_interrupted else "failed"


def decode(data: bytes, *, limit: int | None = None) -> DataflowRun:
    """Parse a run record (``limit``: most bytes it may decode to, for untrusted bytes)."""
    return from_east(beast2.decode(data, DataflowRunType, trusted=False, limit=limit))
