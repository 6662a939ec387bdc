"""The :class:`~e3.model.protocol.Repository` of a repository on a local path.

Each method imports the module it needs when called, so a command pays only
for the parts of e3 it uses (``e3 get`` never loads zip or gc code).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from e3.core.executions import Execution
    from e3.dataflow.scheduler import RunOutcome, StartOptions
    from e3.model.events import Event
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
    from e3.records.dataflow import DataflowRun
    from e3.store.repository import RepoStore


class LocalRepository:
    """Repository operations, in this process, on a local repository."""

    def __init__(self, repo: RepoStore) -> None:
        self.repo = repo

    @property
    def location(self) -> str:
        """The repository's absolute path."""
        return str(self.repo.root)

    def repo_status(self) -> RepoStatus:
        """Counts, packages and workspaces."""
        from e3.core import packages, workspaces
        from e3.model.results import RepoStatus

        count = sum(1 for _ in self.repo.objects.hashes())
        return RepoStatus(
            self.location,
            count,
            packages.list_packages(self.repo),
            workspaces.list_workspaces(self.repo),
        )

    def repo_remove(self) -> None:
        """Delete the repository directory."""
        from e3.store import repository

        repository.remove_repository(self.repo)

    def gc(self, *, dry_run: bool, min_age_seconds: float) -> GcResult:
        """Mark and sweep."""
        from e3.core import gc

        return gc.collect(self.repo, dry_run=dry_run, min_age=min_age_seconds)

    def package_import(self, zip_path: Path, *, force: bool = False) -> ImportResult:
        """Import a package zip."""
        from e3.core import packages

        return packages.import_package(self.repo, zip_path, force=force)

    def package_export(self, spec: str, out: Path) -> ExportResult:
        """Export a package."""
        from e3.core import packages

        return packages.export_package(self.repo, spec, out)

    def package_list(self) -> list[PackageInfo]:
        """All packages."""
        from e3.core import packages

        return packages.list_packages(self.repo)

    def package_remove(self, spec: str) -> PackageInfo:
        """Remove a package ref."""
        from e3.core import packages

        return packages.remove_package(self.repo, spec)

    def workspace_create(self, ws: str) -> None:
        """Create an empty workspace."""
        from e3.core import workspaces

        workspaces.create_workspace(self.repo, ws)

    def workspace_deploy(self, ws: str, spec: str) -> PackageInfo:
        """Deploy a package."""
        from e3.core import workspaces

        return workspaces.deploy(self.repo, ws, spec)

    def workspace_list(self) -> list[WorkspaceInfo]:
        """All workspaces."""
        from e3.core import workspaces

        return workspaces.list_workspaces(self.repo)

    def workspace_remove(self, ws: str) -> None:
        """Delete a workspace."""
        from e3.core import workspaces

        workspaces.remove_workspace(self.repo, ws)

    def workspace_export(
        self, ws: str, out: Path, *, name: str | None = None, version: str | None = None
    ) -> ExportResult:
        """Export a workspace."""
        from e3.core import workspaces

        return workspaces.export_workspace(self.repo, ws, out, name=name, version=version)

    def workspace_import(self, ws: str, zip_path: Path, *, force: bool = False) -> ImportResult:
        """Import and deploy."""
        from e3.core import workspaces

        return workspaces.import_workspace(self.repo, ws, zip_path, force=force)

    def dataset_list(
        self, ws: str, path: DatasetPath, *, recursive: bool = False, with_status: bool = False
    ) -> list[DatasetEntry]:
        """List datasets."""
        from e3.core import datasets

        return datasets.list_datasets(
            self.repo, ws, path, recursive=recursive, with_status=with_status
        )

    def dataset_status(self, ws: str, path: DatasetPath) -> DatasetEntry:
        """One dataset's status."""
        from e3.core import datasets

        return datasets.dataset_status(self.repo, ws, path)

    def dataset_get(self, ws: str, path: DatasetPath) -> tuple[Any, bytes | None]:
        """A dataset's type and bytes."""
        from e3.core import datasets

        return datasets.get_dataset(self.repo, ws, path)

    def dataflow_start(
        self,
        ws: str,
        options: StartOptions,
        *,
        on_event: Callable[[Event], None] | None = None,
        install_signal_handlers: bool = False,
    ) -> RunOutcome:
        """Run the workspace's dataflow here, in this process."""
        from e3.dataflow.scheduler import run_sync

        return run_sync(
            self.repo, ws, options, on_event=on_event, handle_signals=install_signal_handlers
        )

    def workspace_status(self, ws: str) -> WorkspaceStatus:
        """Dry-run status."""
        from e3.dataflow.status import workspace_status

        return workspace_status(self.repo, ws)

    def task_logs(self, ws: str) -> list[TaskLogSummary]:
        """Per-task execution summary."""
        from e3.dataflow.logs import task_log_summaries

        return task_log_summaries(self.repo, ws)

    def task_execution(self, ws: str, task: str) -> Execution:
        """The current execution of a task."""
        from e3.dataflow.logs import require_execution

        return require_execution(self.repo, ws, task)

    def read_log(
        self,
        ws: str,
        task: str,
        stream: str,
        offset: int,
        limit: int,
        execution_id: str | None = None,
    ) -> LogChunk:
        """A slice of a task's log."""
        from e3.dataflow import logs

        ex = logs.require_execution(self.repo, ws, task)
        if execution_id is not None and execution_id != ex.execution_id:
            from e3.core import executions
            from e3.errors import ExecutionNotFound

            found = [
                other
                for other in executions.all_for_task(self.repo, ex.task_hash)
                if other.execution_id == execution_id
            ]
            if not found:
                raise ExecutionNotFound(
                    f"task '{task}' has no execution {execution_id!r}", task=task
                )
            ex = found[0]
        return logs.read_log(self.repo, ex, stream, offset, limit)

    def dataflow_runs(self, ws: str) -> list[DataflowRun]:
        """Run history."""
        from e3.core import workspaces
        from e3.dataflow.logs import list_runs

        workspaces.read_state(self.repo, ws)  # WorkspaceNotFound for unknown names
        return list_runs(self.repo, ws)

    def dataset_set(self, ws: str, path: DatasetPath, data: bytes) -> str:
        """Set a dataset from Beast2 bytes."""
        from e3.core import datasets

        return datasets.set_dataset_bytes(self.repo, ws, path, data)

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
        labels: list[str] | None = None,
        timeout: float | None = None,
    ) -> AdhocResult:
        """Run one task here (``labels``: how messages name the input files)."""
        from e3.dataflow.adhoc import run_task

        return run_task(
            self.repo,
            spec,
            task,
            inputs,
            output,
            force=force,
            isolation=isolation,
            on_input=on_input,
            labels=labels,
            timeout=timeout,
        )

    def verify(self) -> VerifyReport:
        """Check the repository."""
        from e3.core.verify import verify

        return verify(self.repo)

    def close(self) -> None:
        """Nothing to release."""
