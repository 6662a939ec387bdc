"""Plain results of repository operations, shared by the library, CLI, server and client.

These dataclasses carry no behaviour and import nothing heavy, so the CLI can
render them and the HTTP client can build them without touching storage.
East types inside them are opaque values (see :mod:`e3.codec.types`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

DatasetPath = tuple[str, ...]


@dataclass(frozen=True)
class PackageInfo:
    """A package known to a repository."""

    name: str
    version: str
    hash: str

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ImportResult:
    """What a package import did."""

    name: str
    version: str
    hash: str
    object_count: int
    new_objects: int
    replaced: bool = False


@dataclass(frozen=True)
class ExportResult:
    """What a package or workspace export wrote."""

    name: str
    version: str
    hash: str
    object_count: int
    size: int


@dataclass(frozen=True)
class WorkspaceInfo:
    """A workspace and what is deployed in it."""

    name: str
    deployed: bool
    package_name: str | None = None
    package_version: str | None = None
    package_hash: str | None = None
    deployed_at: datetime | None = None
    current_run_id: str | None = None


@dataclass(frozen=True)
class DatasetEntry:
    """A node of a workspace's dataset tree, with its current state for datasets.

    ``status`` is ``set``, ``unset`` or ``null`` for datasets and ``tree`` for
    inner nodes. ``type`` is the declared East type (``None`` for trees).
    """

    path: DatasetPath
    kind: Literal["dataset", "tree"]
    type: Any = None
    writable: bool = False
    status: Literal["set", "unset", "null", "tree", "unknown"] = "unknown"
    hash: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class GcResult:
    """Counts of a garbage collection (``dry_run``: what would be deleted)."""

    retained_objects: int
    deleted_objects: int
    skipped_young: int
    deleted_partials: int
    bytes_freed: int
    dry_run: bool


@dataclass(frozen=True)
class RepoStatus:
    """Summary of a repository."""

    location: str
    object_count: int
    packages: list[PackageInfo] = field(default_factory=list)
    workspaces: list[WorkspaceInfo] = field(default_factory=list)


# ── asynchronous jobs and transfers (HTTP API) ──────────────────────────────


@dataclass(frozen=True)
class AdhocResult:
    """What ``e3 run`` did."""

    task: str
    output_hash: str | None
    execution_id: str | None
    cached: bool
    duration: float
    error: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    """What ``e3 repo verify`` checked, and every problem it found (empty: all is well)."""

    objects: int
    packages: int
    workspaces: int
    refs: int
    executions: int
    incomplete_executions: int
    runs: int
    partial_files: int
    problems: list[str] = field(default_factory=list)


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


@dataclass(frozen=True)
class TaskInfo:
    """A task of a deployed package."""

    name: str
    hash: str
    inputs: list[str] = field(default_factory=list)
    output: str = ""
    command_ir: str = ""


@dataclass(frozen=True)
class TaskProblem:
    """A task that failed or could not run, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class DataflowRequest:
    """``e3 start`` options, as sent to a server."""

    filters: list[str] = field(default_factory=list)
    concurrency: int = 4
    force: bool = False
    keep_going: bool = False
    timeout: float | None = None
    isolation: str = "warm"


@dataclass(frozen=True)
class DataflowResult:
    """How a run ended."""

    run_id: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0
    failed: list[TaskProblem] = field(default_factory=list)
    waiting: list[TaskProblem] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)


# ── dataflow status and logs ────────────────────────────────────────────────


@dataclass(frozen=True)
class TaskStatus:
    """One task's state (see the module docstring for the states)."""

    name: str
    state: str
    detail: str = ""
    depends_on: tuple[str, ...] = ()
    pid: int | None = None
    exit_code: int | None = None
    execution_id: str | None = None


@dataclass(frozen=True)
class DatasetState:
    """One dataset's freshness."""

    path: DatasetPath
    state: str  # up-to-date | stale | unset


@dataclass(frozen=True)
class WorkspaceStatus:
    """A workspace at a glance."""

    workspace: str
    package: str
    locked_by: list[str] = field(default_factory=list)
    tasks: list[TaskStatus] = field(default_factory=list)
    datasets: list[DatasetState] = field(default_factory=list)

    def task_counts(self) -> dict[str, int]:
        """Number of tasks in each state."""
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def dataset_counts(self) -> dict[str, int]:
        """Number of datasets in each state."""
        out: dict[str, int] = {}
        for d in self.datasets:
            out[d.state] = out.get(d.state, 0) + 1
        return out


@dataclass(frozen=True)
class LogChunk:
    """A slice of a log file (``complete``: the execution is over and this is the end)."""

    data: bytes
    offset: int
    size: int
    total_size: int
    complete: bool


@dataclass(frozen=True)
class TaskLogSummary:
    """A task's executions in a workspace."""

    name: str
    state: str
    executions: int
