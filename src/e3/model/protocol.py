"""The operations the CLI (and later the HTTP server) performs on one repository.

:class:`Repository` is implemented by :class:`e3.api.local.LocalRepository`
(a repository on a local path) and by the HTTP client (a repository on an e3
server), so every CLI command works the same on either. Results are the plain
dataclasses of :mod:`e3.model.results`; dataset values travel as canonical Beast2 bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from e3.model.results import (
    AdhocResult,
    DatasetEntry,
    DatasetPath,
    ExportResult,
    GcResult,
    ImportResult,
    LogChunk,
    PackageInfo,
    RepoStatus,
    TaskLogSummary,
    VerifyReport,
    WorkspaceInfo,
    WorkspaceStatus,
)

if TYPE_CHECKING:
    from e3.core.executions import Execution
    from e3.dataflow.scheduler import RunOutcome, StartOptions
    from e3.model.events import Event
    from e3.records.dataflow import DataflowRun


class Repository(Protocol):
    """Everything e3 can do to one repository, local or remote."""

    @property
    def location(self) -> str:
        """Path or URL of the repository, for messages."""
        ...

    def repo_status(self) -> RepoStatus:
        """Counts, packages and workspaces."""
        ...

    def repo_remove(self) -> None:
        """Delete the repository (workspaces must have been removed first by the caller)."""
        ...

    def gc(self, *, dry_run: bool, min_age_seconds: float) -> GcResult:
        """Collect unreachable objects."""
        ...

    def package_import(self, zip_path: Path, *, force: bool = False) -> ImportResult:
        """Import a package zip."""
        ...

    def package_export(self, spec: str, out: Path) -> ExportResult:
        """Export ``name[@version]`` to a zip."""
        ...

    def package_list(self) -> list[PackageInfo]:
        """All packages."""
        ...

    def package_remove(self, spec: str) -> PackageInfo:
        """Remove ``name[@version]``."""
        ...

    def workspace_create(self, ws: str) -> None:
        """Create an empty workspace."""
        ...

    def workspace_deploy(self, ws: str, spec: str) -> PackageInfo:
        """Deploy ``name[@version]`` into a workspace (created if needed)."""
        ...

    def workspace_list(self) -> list[WorkspaceInfo]:
        """All workspaces."""
        ...

    def workspace_remove(self, ws: str) -> None:
        """Delete a workspace."""
        ...

    def workspace_export(
        self, ws: str, out: Path, *, name: str | None = None, version: str | None = None
    ) -> ExportResult:
        """Export a workspace's current data as a package zip."""
        ...

    def workspace_import(self, ws: str, zip_path: Path, *, force: bool = False) -> ImportResult:
        """Import a zip and deploy it into ``ws``."""
        ...

    def dataset_list(
        self, ws: str, path: DatasetPath, *, recursive: bool = False, with_status: bool = False
    ) -> list[DatasetEntry]:
        """Children (or all datasets below) a path."""
        ...

    def dataset_status(self, ws: str, path: DatasetPath) -> DatasetEntry:
        """One dataset's type, state, hash and size."""
        ...

    def dataset_get(self, ws: str, path: DatasetPath) -> tuple[Any, bytes | None]:
        """Declared type and canonical Beast2 bytes (``None`` for null)."""
        ...

    def dataflow_start(
        self,
        ws: str,
        options: StartOptions,
        *,
        on_event: Callable[[Event], None] | None = None,
        install_signal_handlers: bool = False,
    ) -> RunOutcome:
        """Run the workspace's dataflow; events are passed to ``on_event`` as they happen."""
        ...

    def workspace_status(self, ws: str) -> WorkspaceStatus:
        """What a run would do now (task and dataset states, lock holders)."""
        ...

    def task_logs(self, ws: str) -> list[TaskLogSummary]:
        """Every task with its latest state and number of executions."""
        ...

    def task_execution(self, ws: str, task: str) -> Execution:
        """The current execution of a task (see :mod:`e3.dataflow.logs`)."""
        ...

    def read_log(
        self,
        ws: str,
        task: str,
        stream: str,
        offset: int,
        limit: int,
        execution_id: str | None = None,
    ) -> LogChunk:
        """A slice of a task's stdout or stderr."""
        ...

    def dataflow_runs(self, ws: str) -> list[DataflowRun]:
        """Past runs of a workspace, oldest first."""
        ...

    def dataset_set(self, ws: str, path: DatasetPath, data: bytes) -> str:
        """Set a dataset from Beast2 bytes; returns the stored hash."""
        ...

    def task_run(
        self,
        spec: str,
        task: str,
        inputs: list[Path],
        output: Path,
        *,
        force: bool = False,
        isolation: str = "process",
        on_input: Callable[[str, str], None] | None = None,
    ) -> AdhocResult:
        """Run one task of a package on input files (``e3 run``), memoized like any other."""
        ...

    def verify(self) -> VerifyReport:
        """Check every object, ref and record (read only)."""
        ...

    def close(self) -> None:
        """Release connections (a local repository holds none)."""
        ...
