"""Execution status: one record per attempt to run a task on given inputs.

Stored at ``executions/<taskHash>/<inputsHash>/<executionId>/status.beast2``::

    ExecutionStatus = Variant {
      error:   {executionId, inputHashes, startedAt, completedAt, message},
      failed:  {executionId, inputHashes, startedAt, completedAt, exitCode},
      running: {executionId, inputHashes, startedAt, pid, pidStartTime, bootId},
      success: {executionId, inputHashes, outputHash, startedAt, completedAt},
    }

``running`` names the process so that a later reader can tell a live
execution from one whose engine died (pid + start time + boot id).

An execution that ran on a cluster worker also records where: each case's
struct then ends with ``worker: String`` (the worker's address). Records of
local executions keep the reference's type byte for byte, and readers accept
both forms.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from e3.codec import beast2, small
from e3.codec.types import (
    ArrayType,
    DateTimeType,
    EastValue,
    IntegerType,
    StringType,
    StructType,
    VariantType,
    variant,
)
from e3.errors import DecodeError
from e3.records._util import as_utc

_ids = [("executionId", StringType), ("inputHashes", ArrayType(StringType))]
ExecutionStatusType = VariantType(
    [
        (
            "error",
            StructType(
                [
                    *_ids,
                    ("startedAt", DateTimeType),
                    ("completedAt", DateTimeType),
                    ("message", StringType),
                ]
            ),
        ),
        (
            "failed",
            StructType(
                [
                    *_ids,
                    ("startedAt", DateTimeType),
                    ("completedAt", DateTimeType),
                    ("exitCode", IntegerType),
                ]
            ),
        ),
        (
            "running",
            StructType(
                [
                    *_ids,
                    ("startedAt", DateTimeType),
                    ("pid", IntegerType),
                    ("pidStartTime", IntegerType),
                    ("bootId", StringType),
                ]
            ),
        ),
        (
            "success",
            StructType(
                [
                    *_ids,
                    ("outputHash", StringType),
                    ("startedAt", DateTimeType),
                    ("completedAt", DateTimeType),
                ]
            ),
        ),
    ]
)

#: The same cases, each ending with the ``worker`` that ran the execution.
ExecutionStatusWorkerType = VariantType(
    [
        (name, StructType([*((f["name"], f["type"]) for f in case.value), ("worker", StringType)]))
        for name, case in ((c["name"], c["type"]) for c in ExecutionStatusType.value)
    ]
)

ExecutionState = Literal["running", "success", "failed", "error"]


@dataclass(frozen=True)
class ExecutionStatus:
    """One execution attempt. Which optional fields are set depends on ``state``."""

    state: ExecutionState
    execution_id: str
    input_hashes: tuple[str, ...]
    started_at: datetime
    completed_at: datetime | None = None
    output_hash: str | None = None
    exit_code: int | None = None
    message: str | None = None
    pid: int | None = None
    pid_start_time: int | None = None
    boot_id: str | None = None
    #: The cluster worker that ran it (``None``: this machine).
    worker: str | None = None


def to_east(s: ExecutionStatus) -> EastValue:
    """As an East value of :data:`ExecutionStatusType` (or of the worker form, with a worker)."""
    value = _to_east(s)
    if s.worker is not None:
        value = variant(str(value.type), {**value.value, "worker": s.worker})
    return value


def _to_east(s: ExecutionStatus) -> EastValue:
    base = {
        "executionId": s.execution_id,
        "inputHashes": list(s.input_hashes),
        "startedAt": s.started_at,
    }
    if s.state == "running":
        return variant(
            "running",
            {
                **base,
                "pid": s.pid or 0,
                "pidStartTime": s.pid_start_time or 0,
                "bootId": s.boot_id or "",
            },
        )
    if s.state == "success":
        return variant(
            "success", {**base, "outputHash": s.output_hash or "", "completedAt": s.completed_at}
        )
    if s.state == "failed":
        return variant(
            "failed",
            {
                **base,
                "completedAt": s.completed_at,
                "exitCode": s.exit_code if s.exit_code is not None else -1,
            },
        )
    return variant("error", {**base, "completedAt": s.completed_at, "message": s.message or ""})


def from_east(value: EastValue) -> ExecutionStatus:
    """Inverse of :func:`to_east`."""
    status = _from_east(value)
    try:
        worker = value.value["worker"]
    except (KeyError, TypeError):
        return status
    return replace(status, worker=str(worker))


def _from_east(value: EastValue) -> ExecutionStatus:
    case = str(value.type)
    p = value.value
    execution_id = str(p["executionId"])
    input_hashes = tuple(str(h) for h in p["inputHashes"])
    started_at = as_utc(p["startedAt"])
    if case == "running":
        return ExecutionStatus(
            "running",
            execution_id,
            input_hashes,
            started_at,
            pid=int(p["pid"]),
            pid_start_time=int(p["pidStartTime"]),
            boot_id=str(p["bootId"]),
        )
    completed_at = as_utc(p["completedAt"])
    if case == "success":
        return ExecutionStatus(
            "success",
            execution_id,
            input_hashes,
            started_at,
            completed_at,
            output_hash=str(p["outputHash"]),
        )
    if case == "failed":
        return ExecutionStatus(
            "failed",
            execution_id,
            input_hashes,
            started_at,
            completed_at,
            exit_code=int(p["exitCode"]),
        )
    return ExecutionStatus(
        "error", execution_id, input_hashes, started_at, completed_at, message=str(p["message"])
    )


def encode(status: ExecutionStatus) -> bytes:
    """Bytes of a ``status.beast2`` file."""
    east_type = ExecutionStatusType if status.worker is None else ExecutionStatusWorkerType
    return beast2.encode(to_east(status), east_type)


def decode(data: bytes, *, limit: int | None = None) -> ExecutionStatus:
    """Parse a ``status.beast2`` file, of either form (``limit``: most bytes it may decode to).

    Records with the header e3 writes are read directly (:mod:`e3.codec.small`):
    ``workspace status`` of 10,000 tasks reads 10,000 of them, each about 70 µs
    through east-py. Anything else goes to east-py, which accepts or refuses it.
    """
    for header, with_worker in _headers():
        if data.startswith(header):
            with contextlib.suppress(small.NotSmall):
                stream = small.stream(data, header)
                if limit is None or len(stream) <= limit:
                    return _read(small.Reader(stream), with_worker)
            break
    if b"worker" in data:  # the field's name is in the header of the worker form
        try:
            return from_east(
                beast2.decode(data, ExecutionStatusWorkerType, trusted=False, limit=limit)
            )
        except DecodeError:
            pass  # the word was in a value (a message): the reference's form
    return from_east(beast2.decode(data, ExecutionStatusType, trusted=False, limit=limit))


#: Variant cases in East's order (by name), as the stream numbers them.
_CASES: tuple[ExecutionState, ...] = ("error", "failed", "running", "success")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _read(r: small.Reader, with_worker: bool) -> ExecutionStatus:
    """A status from its value stream (see :func:`decode`), fields in the type's order."""
    case = r.varint()
    if case >= len(_CASES):
        raise small.NotSmall("variant case")
    state = _CASES[case]
    execution_id = r.string()
    input_hashes = tuple(r.string_array())
    output_hash = message = boot_id = worker = None
    completed_at = exit_code = pid = pid_start_time = None
    if state == "success":
        output_hash = r.string()
    started_at = _datetime(r.zigzag())
    if state == "running":
        pid, pid_start_time, boot_id = r.zigzag(), r.zigzag(), r.string()
    else:
        completed_at = _datetime(r.zigzag())
        if state == "failed":
            exit_code = r.zigzag()
        elif state == "error":
            message = r.string()
    if with_worker:
        worker = r.string()
    r.end()
    return ExecutionStatus(
        state, execution_id, input_hashes, started_at, completed_at, output_hash,
        exit_code, message, pid, pid_start_time, boot_id, worker,
    )  # fmt: skip


def _datetime(ms: int) -> datetime:
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError as exc:
        raise small.NotSmall("DateTime out of range") from exc


@functools.cache
def _headers() -> tuple[tuple[bytes, bool], ...]:
    """The headers e3 writes (magic, type section, source map): worker form first (longer)."""
    out = []
    for worker in ("w", None):
        data = encode(ExecutionStatus("error", "", (), _EPOCH, _EPOCH, message="", worker=worker))
        out.append((data[: beast2.header_size(data)], worker is not None))
    return tuple(out)
