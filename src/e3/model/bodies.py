"""Bodies of HTTP API requests and replies that are not library results.

Shared by the server (:mod:`e3.server.app`) and the client
(:mod:`e3.client.service`); their Beast2 wire types are derived from these
annotations by :mod:`e3.model.wire`, so both sides agree by construction. This
module imports nothing heavy, so the client does not need the server's extras.
"""

from __future__ import annotations

from dataclasses import dataclass

from e3.model.events import Event
from e3.model.results import DataflowResult


@dataclass(frozen=True)
class GcRequest:
    """Body of ``POST /repos/<repo>/gc``."""

    dry_run: bool = False
    min_age_seconds: float = 60.0


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
    result: DataflowResult | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class ExecutionInfo:
    """Which execution a task's logs come from."""

    task_hash: str
    inputs_hash: str
    execution_id: str
    state: str


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
