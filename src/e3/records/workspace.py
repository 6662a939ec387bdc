"""Workspace state: which package is deployed, pinned by hash, and the last good run.

``WorkspaceState = Struct { packageName, packageVersion, packageHash: String,
deployedAt: DateTime, currentRunId: Option<String> }``. An empty state file
means "created, nothing deployed yet", as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from e3.codec import beast2
from e3.codec.types import DateTimeType, EastValue, OptionType, StringType, StructType
from e3.records._util import as_utc, from_option, to_option

WorkspaceStateType = StructType(
    [
        ("packageName", StringType),
        ("packageVersion", StringType),
        ("packageHash", StringType),
        ("deployedAt", DateTimeType),
        ("currentRunId", OptionType(StringType)),
    ]
)


@dataclass(frozen=True)
class WorkspaceState:
    """A deployed workspace's pin."""

    package_name: str
    package_version: str
    package_hash: str
    deployed_at: datetime
    current_run_id: str | None = None


def to_east(state: WorkspaceState) -> EastValue:
    """As an East value of :data:`WorkspaceStateType`."""
    return {
        "packageName": state.package_name,
        "packageVersion": state.package_version,
        "packageHash": state.package_hash,
        "deployedAt": state.deployed_at,
        "currentRunId": to_option(state.current_run_id),
    }


def from_east(value: EastValue) -> WorkspaceState:
    """Inverse of :func:`to_east`."""
    run_id = from_option(value["currentRunId"])
    return WorkspaceState(
        package_name=str(value["packageName"]),
        package_version=str(value["packageVersion"]),
        package_hash=str(value["packageHash"]),
        deployed_at=as_utc(value["deployedAt"]),
        current_run_id=None if run_id is None else str(run_id),
    )


def encode(state: WorkspaceState) -> bytes:
    """Canonical bytes of a workspace state."""
    return beast2.encode(to_east(state), WorkspaceStateType)


def decode(data: bytes) -> WorkspaceState:
    """Parse a workspace state file (non-empty)."""
    return from_east(beast2.decode(data, WorkspaceStateType, trusted=False))
