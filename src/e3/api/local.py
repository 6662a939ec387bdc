"""The porcelain of a repository on a local path: :class:`LocalRepository`.

Each verb is a few lines over the domain modules (:mod:`e3.core`) and the engine
(:mod:`e3.dataflow` through :class:`~e3.api.engine.Engine`). The CLI, the HTTP
server and embedding programs all call these methods, so one verb has one
implementation wherever it is invoked from.

Modules are imported by the verbs that need them, so that a short command pays
only for what it uses: ``e3 get`` never loads the zip, garbage-collection or
dataflow code.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

from e3.base.paths import DatasetPath
from e3.model.protocol import StartsRuns
from e3.store.repository import RepoStore

if TYPE_CHECKING:
    from e3.api.engine import Engine
    from e3.api.runs import RunHandle
    from e3.model.results import (
        AdhocResult,
        DatasetEntry,
        ExecutionInfo,
        ExportResult,
        GcResult,
        ImportResult,
        LogChunk,
        PackageInfo,
        RepoStatus,
        TaskInfo,
        TaskLogSummary,
        VerifyReport,
        WorkspaceInfo,
        WorkspaceStatus,
    )
    from e3.model.retention import GcPolicy
    from e3.model.runs import Isolation, StartOptions
    from e3.records.dataflow import DataflowRun
    from e3.records.package import PackageObject
    from e3.store.zipfmt import ZipLimits


class LocalRepository(StartsRuns):
    """A repository on a local path, worked on in this process.

    Dataflows run on ``engine`` (one is made, and closed with this handle, when
    none is given: a server passes the engine all its repositories share).
    """

    def __init__(self, store: RepoStore, *, engine: Engine | None = None) -> None:
        self.store = store
        self._engine = engine
        self._own_engine = engine is None

    @property
    def location(self) -> str:
        """The repository's absolute path."""
        return str(self.store.root)

    @property
    def engine(self) -> Engine:
        """The engine runs execute on (made on first use)."""
        if self._engine is None:
            from e3.api.engine import Engine

            self._engine = Engine()
        return self._engine

    def close(self) -> None:
        """Cancel this handle's runs still going (when it owns the engine) and stop its workers."""
        if self._own_engine and self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> LocalRepository:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ── repository ───────────────────────────────────────────────────────
    def repo_status(self) -> RepoStatus:
        """Counts, packages and workspaces."""
        from e3.core import packages, workspaces
        from e3.model.results import RepoStatus

        count = sum(1 for _ in self.store.objects.hashes())
        return RepoStatus(
            self.location,
            count,
            packages.list_packages(self.store),
            workspaces.list_workspaces(self.store),
        )

    def repo_remove(self) -> None:
        """Delete the repository: its workspaces first (each under its lock), then the rest."""
        from e3.core import workspaces
        from e3.store import repository

        for ws in workspaces.list_workspaces(self.store):
            workspaces.remove_workspace(self.store, ws.name)
        repository.remove_repository(self.store)

    def gc(self, policy: GcPolicy | None = None) -> GcResult:
        """Collect unreachable objects, and history as the policy allows."""
        from e3.core import gc
        from e3.model.retention import GcPolicy

        return gc.collect(self.store, policy or GcPolicy())

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Check the repository; ``repair`` recomputes damaged results."""
        from e3.core.verify import verify

        report = verify(self.store)
        if repair and report.problems:
            from e3.dataflow.repair import repair as repair_store

            return repair_store(self.store, report)
        return report

    def object_bytes(self, hash_: str) -> bytes:
        """An object's bytes, checked against its hash (``CorruptObject`` if damaged)."""
        return self.store.objects.get(hash_, verify=True)

    def open_object(self, hash_: str) -> BinaryIO:
        """An object's file, open for reading (the caller closes it).

        Streaming readers use it instead of :meth:`object_bytes`: nothing is read
        whole, and an open file stays readable even if garbage collection removes
        the object meanwhile. Nothing is verified: readers check the hash as the
        bytes go by (the server sends it as ``X-Content-SHA256``).

        Raises:
            ObjectNotFound: no such object.
        """
        from e3.errors import ObjectNotFound

        try:
            return open(self.store.objects.file_of(hash_), "rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"object {hash_[:12]}… not found", hash=hash_) from None

    # ── packages ─────────────────────────────────────────────────────────
    def package_import(
        self, zip_path: Path, *, force: bool = False, limits: ZipLimits | None = None
    ) -> ImportResult:
        """Import a package zip (``limits``: what it may decompress to; a server sets them)."""
        from e3.core import package_zip

        return package_zip.import_package(self.store, zip_path, force=force, limits=limits)

    def package_export(self, spec: str, out: Path) -> ExportResult:
        """Export a package."""
        from e3.core import package_zip

        return package_zip.export_package(self.store, spec, out)

    def package_list(self) -> list[PackageInfo]:
        """All packages."""
        from e3.core import packages

        return packages.list_packages(self.store)

    def package_object(self, spec: str) -> tuple[PackageInfo, PackageObject]:
        """A package and its object."""
        from e3.core import packages

        info = packages.resolve(self.store, spec)
        return info, packages.read_package_object(self.store, info.hash)

    def package_remove(self, spec: str) -> PackageInfo:
        """Remove a package ref."""
        from e3.core import packages

        return packages.remove_package(self.store, spec)

    # ── workspaces ───────────────────────────────────────────────────────
    def workspace_create(self, ws: str) -> None:
        """Create an empty workspace."""
        from e3.core import workspaces

        workspaces.create_workspace(self.store, ws)

    def workspace_deploy(self, ws: str, spec: str) -> PackageInfo:
        """Deploy a package."""
        from e3.core import workspaces

        return workspaces.deploy(self.store, ws, spec)

    def workspace_list(self) -> list[WorkspaceInfo]:
        """All workspaces."""
        from e3.core import workspaces

        return workspaces.list_workspaces(self.store)

    def workspace_get(self, ws: str) -> WorkspaceInfo:
        """One workspace."""
        from e3.core import workspaces

        return workspaces.workspace_info(ws, workspaces.read_state(self.store, ws))

    def workspace_remove(self, ws: str) -> None:
        """Delete a workspace."""
        from e3.core import workspaces

        workspaces.remove_workspace(self.store, ws)

    def workspace_export(
        self, ws: str, out: Path, *, name: str | None = None, version: str | None = None
    ) -> ExportResult:
        """Export a workspace."""
        from e3.core import workspace_zip

        return workspace_zip.export_workspace(self.store, ws, out, name=name, version=version)

    def workspace_import(
        self, ws: str, zip_path: Path, *, force: bool = False, limits: ZipLimits | None = None
    ) -> ImportResult:
        """Import and deploy (``limits`` as for :meth:`package_import`)."""
        from e3.core import workspace_zip

        return workspace_zip.import_workspace(self.store, ws, zip_path, force=force, limits=limits)

    def workspace_status(self, ws: str, *, tasks: list[str] | None = None) -> WorkspaceStatus:
        """Dry-run status (``tasks``: of those and their upstream only)."""
        from e3.dataflow.status import workspace_status

        return workspace_status(self.store, ws, tasks)

    def task_list(self, ws: str) -> list[TaskInfo]:
        """Tasks of the deployed package, in dependency order."""
        from e3.dataflow.status import task_infos

        return task_infos(self.store, ws)

    # ── datasets ─────────────────────────────────────────────────────────
    def dataset_list(
        self, ws: str, path: DatasetPath, *, recursive: bool = False, with_status: bool = False
    ) -> list[DatasetEntry]:
        """List datasets."""
        from e3.core import datasets

        return datasets.list_datasets(
            self.store, ws, path, recursive=recursive, with_status=with_status
        )

    def dataset_status(self, ws: str, path: DatasetPath) -> DatasetEntry:
        """One dataset's status."""
        from e3.core import datasets

        return datasets.dataset_status(self.store, ws, path)

    def dataset_get(self, ws: str, path: DatasetPath) -> tuple[Any, bytes | None]:
        """A dataset's type and bytes."""
        from e3.core import datasets

        return datasets.get_dataset(self.store, ws, path)

    def dataset_object(self, ws: str, path: DatasetPath) -> tuple[Any, str | None]:
        """A dataset's type and the hash of the object holding its value (``None``: null).

        With :meth:`open_object`, how a server streams a value without reading it whole.
        """
        from e3.core import datasets

        return datasets.dataset_object(self.store, ws, path)

    def dataset_save(self, ws: str, path: DatasetPath, out: Path) -> tuple[Any, int | None]:
        """Write a dataset's Beast2 bytes to ``out`` (atomically); its type and size.

        Raises:
            UsageError: the dataset holds null, which has no Beast2 bytes.
        """
        import shutil

        from e3.base.atomic import staging_name, storage_error

        east_type, h = self.dataset_object(ws, path)
        if h is None:
            return east_type, None
        tmp = staging_name(out)
        try:
            with self.open_object(h) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, out)
        except OSError as exc:
            raise storage_error(exc, "write", out) from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return east_type, out.stat().st_size

    def dataset_set(
        self, ws: str, path: DatasetPath, data: bytes, *, limit: int | None = None
    ) -> str:
        """Set a dataset from Beast2 bytes (``limit``: most bytes they may decode to)."""
        from e3.core import datasets

        return datasets.set_dataset_bytes(self.store, ws, path, data, limit=limit)

    # ── dataflows ────────────────────────────────────────────────────────
    def start_with(self, ws: str, options: StartOptions) -> RunHandle:
        """Start the dataflow on this handle's engine (refusals raise here)."""
        return self.engine.start(self.store, ws, options)

    def runs(self, ws: str, *, last: int | None = None, brief: bool = False) -> list[DataflowRun]:
        """Run history, oldest first (``last``: the newest so many; ``brief``: no task detail)."""
        from e3.core import runs, workspaces

        workspaces.read_state(self.store, ws)  # WorkspaceNotFound for unknown names
        return runs.list_runs(self.store, ws, last=last, brief=brief)

    def run(self, run_id: str) -> RunHandle:
        """A run by id: this process's own, or one recorded by any other."""
        from e3.api.runs import RecordedRun
        from e3.core import runs
        from e3.errors import ExecutionNotFound

        if self._engine is not None:
            mine = self._engine.get(run_id)
            if mine is not None:
                return mine
        record = runs.find_run(self.store, run_id, brief=True)  # status() reads it whole
        if record is None:
            raise ExecutionNotFound(f"run {run_id!r} not found", run=run_id)
        return RecordedRun(self.store, record)

    def task_logs(self, ws: str) -> list[TaskLogSummary]:
        """Per-task execution summary."""
        from e3.dataflow.logs import task_log_summaries

        return task_log_summaries(self.store, ws)

    def task_execution(self, ws: str, task: str) -> ExecutionInfo:
        """The execution whose logs a task shows."""
        from e3.dataflow.logs import execution_info, require_execution

        return execution_info(require_execution(self.store, ws, task))

    def read_log(
        self,
        ws: str,
        task: str,
        stream: str,
        offset: int,
        limit: int,
        execution_id: str | None = None,
    ) -> LogChunk:
        """A slice of a task's log (of its current execution, or of ``execution_id``)."""
        from e3.dataflow import logs

        ex = logs.find_execution(self.store, ws, task, execution_id)
        return logs.read_log(self.store, ex, stream, offset, limit)

    def task_run(
        self,
        spec: str,
        task: str,
        inputs: list[Path],
        output: Path,
        *,
        force: bool = False,
        isolation: Isolation = "process",
        timeout: float | None = None,
        labels: list[str] | None = None,
        on_input: Callable[[str, str], None] | None = None,
    ) -> AdhocResult:
        """Run one task here (``labels``: how messages name the input files)."""
        from e3.dataflow.adhoc import run_task

        return run_task(
            self.store,
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
