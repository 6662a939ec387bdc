"""Lock state: who holds a workspace lock, written into the lock file for display.

``LockState = Struct { operation: Variant{dataflow, dataset_write, deployment,
export, removal}, holder: String, acquiredAt: DateTime, expiresAt: Option<DateTime> }``.
``holder`` is East text ``.process (pid=…, bootId="…", startTime=…, command="…")``
as in the reference. The kernel lock (``flock``) is the truth; this record
only says whom to blame in a conflict message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from e3.codec import beast2
from e3.codec.types import (
    DateTimeType,
    EastValue,
    NullType,
    OptionType,
    StringType,
    StructType,
    VariantType,
    variant,
)
from e3.records._util import as_utc, from_option, to_option

LockOperation = Literal["dataflow", "dataset_write", "deployment", "export", "removal"]
LockOperationType = VariantType(
    [
        ("dataflow", NullType),
        ("dataset_write", NullType),
        ("deployment", NullType),
        ("export", NullType),
        ("removal", NullType),
    ]
)
LockStateType = StructType(
    [
        ("operation", LockOperationType),
        ("holder", StringType),
        ("acquiredAt", DateTimeType),
        ("expiresAt", OptionType(DateTimeType)),
    ]
)


@dataclass(frozen=True)
class ProcessHolder:
    """The process holding a lock: enough to tell whether it is still alive."""

    pid: int
    boot_id: str
    start_time: int
    command: str

    def to_text(self) -> str:
        """The reference's East-text form of a holder."""
        cmd = self.command.replace("\\", "\\\\").replace('"', '\\"')
        return (
            f'.process (pid={self.pid}, bootId="{self.boot_id}", '
            f'startTime={self.start_time}, command="{cmd}")'
        )

    @staticmethod
    def from_text(text: str) -> ProcessHolder | None:
        """Parse :meth:`to_text` output; ``None`` if it is not in that form."""
        m = re.fullmatch(
            r'\.process \(pid=(\d+), bootId="([^"]*)", startTime=(\d+), '
            r'command="((?:[^"\\]|\\.)*)"\)',
            text.strip(),
        )
        if not m:
            return None
        cmd = re.sub(r"\\(.)", r"\1", m.group(4))
        return ProcessHolder(int(m.group(1)), m.group(2), int(m.group(3)), cmd)


@dataclass(frozen=True)
class LockState:
    """Lock-file content."""

    operation: LockOperation
    holder: str
    acquired_at: datetime
    expires_at: datetime | None = None


def to_east(state: LockState) -> EastValue:
    """As an East value of :data:`LockStateType`."""
    return {
        "operation": variant(state.operation, None),
        "holder": state.holder,
        "acquiredAt": state.acquired_at,
        "expiresAt": to_option(state.expires_at),
    }


def from_east(value: EastValue) -> LockState:
    """Inverse of :func:`to_east`."""
    exp = from_option(value["expiresAt"])
    return LockState(
        operation=str(value["operation"].type),  # type: ignore[arg-type]
        holder=str(value["holder"]),
        acquired_at=as_utc(value["acquiredAt"]),
        expires_at=None if exp is None else as_utc(exp),
    )


def encode(state: LockState) -> bytes:
    """Bytes written into a lock file."""
    return beast2.encode(to_east(state), LockStateType)


def decode(data: bytes) -> LockState:
    """Parse lock-file content."""
    return from_east(beast2.decode(data, LockStateType, trusted=False))
