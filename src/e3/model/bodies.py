"""Bodies of HTTP API requests and replies that are not library results.

Shared by the server (:mod:`e3.server.app`) and the client
(:mod:`e3.client.service`); their Beast2 wire types are derived from these
annotations by :mod:`e3.model.wire`, so both sides agree by construction. This
module imports nothing heavy, so the client does not need the server's extras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from e3.model.events import Event
from e3.model.results import (
    AdhocResult,
    ExportResult,
    GcResult,
    ImportResult,
    VerifyReport,
)
from e3.model.runs import RunOutcome


@dataclass(frozen=True)
class ImportRequest:
    """Body of ``POST /repos/<repo>/import``: announce an upload of ``size`` bytes."""

    size: int
    force: bool = False


@dataclass(frozen=True)
class WorkspaceRequest:
    """Body of ``POST /repos/<repo>/workspaces``."""

    name: str


@dataclass(frozen=True)
class DeployRequest:
    """Body of ``POST …/workspaces/<ws>/deploy``."""

    package_ref: str


@dataclass(frozen=True)
class WorkspaceExportRequest:
    """Body of ``POST …/workspaces/<ws>/export``."""

    name: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class UploadRequest:
    """Body of ``POST …/datasets/<path>?upload``: a large value's hash and size."""

    hash: str
    size: int


@dataclass(frozen=True)
class DataflowProgress:
    """A page of a run's events (``offset`` onwards) and, once over, its result."""

    status: str
    events: list[Event]
    total_events: int
    result: RunOutcome | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class RunInput:
    """One input file of ``e3 run``: its name (its extension says its format) and upload."""

    name: str
    upload_id: str


@dataclass(frozen=True)
class TaskRunRequest:
    """Body of ``POST /repos/<repo>/run``: one task of a package on uploaded input files."""

    package: str
    task: str
    inputs: list[RunInput]
    force: bool = False
    isolation: str = "process"
    timeout: float | None = None


@dataclass(frozen=True)
class UploadTicket:
    """Where to ``PUT`` the bytes of an upload (the id names it afterwards)."""

    id: str
    upload_url: str


@dataclass(frozen=True)
class JobStarted:
    """An asynchronous job (import, export, gc) that can be polled by id."""

    id: str


@dataclass(frozen=True)
class JobStatus:
    """State of an asynchronous job; the result field of its kind is set when it succeeded."""

    state: Literal["running", "succeeded", "failed"]
    message: str | None = None
    error_code: str | None = None
    imported: ImportResult | None = None
    exported: ExportResult | None = None
    collected: GcResult | None = None
    ran: AdhocResult | None = None
    verified: VerifyReport | None = None
    input_hashes: list[str] = field(default_factory=list)
    download_url: str | None = None
