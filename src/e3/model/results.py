"""Plain results of repository operations, shared by the library, CLI, server and client.

These dataclasses carry no behaviour and import nothing heavy, so the CLI can
render them and the HTTP client can build them without touching storage.
East types inside them are opaque values (see :mod:`e3.codec.types`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from e3.base.paths import DatasetPath

# Re-exported: the results of every operation are named from here.
from e3.model.listings import DatasetEntry as DatasetEntry
from e3.model.listings import PackageInfo as PackageInfo
from e3.model.listings import WorkspaceInfo as WorkspaceInfo


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
class GcResult:
    """What a garbage collection removed (``dry_run``: what it would remove).

    ``store_bytes``: the object store's size afterwards; ``removed``: one line per
    run, execution or cached result removed by a retention policy.
    """

    retained_objects: int
    deleted_objects: int
    skipped_young: int
    deleted_partials: int
    bytes_freed: int
    dry_run: bool
    removed_runs: int = 0
    removed_executions: int = 0
    evicted_outputs: int = 0
    store_bytes: int = 0
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RepoStatus:
    """Summary of a repository."""

    location: str
    object_count: int
    packages: list[PackageInfo] = field(default_factory=list)
    workspaces: list[WorkspaceInfo] = field(default_factory=list)


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
    """What ``e3 repo verify`` checked, and every problem it found (empty: all is well).

    ``damaged``: hashes of objects that are missing or whose bytes no longer match
    their name; ``repaired``: what ``--repair`` recomputed or dropped, one line each.
    """

    objects: int
    packages: int
    workspaces: int
    refs: int
    executions: int
    incomplete_executions: int
    runs: int
    partial_files: int
    problems: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TaskInfo:
    """A task of a deployed package."""

    name: str
    hash: str
    inputs: list[str] = field(default_factory=list)
    output: str = ""
    command_ir: str = ""


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
    #: The cluster worker its execution ran on (``None``: the engine's machine).
    worker: str | None = None


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
class ExecutionInfo:
    """One recorded attempt at a task: which logs ``e3 logs`` shows, and how it went."""

    task_hash: str
    inputs_hash: str
    execution_id: str
    state: str
    #: The cluster worker it ran on (``None``: the engine's machine).
    worker: str | None = None


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
