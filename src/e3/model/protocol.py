"""The porcelain's shape: what a repository and a run can do, wherever they are.

:class:`Repository` is implemented by :class:`e3.api.local.LocalRepository`
(a repository on a local path, worked on in this process) and by
:class:`e3.client.remote.RemoteRepository` (a repository on an e3 server), and
``e3.open(location)`` returns one or the other; the CLI, the HTTP server and
embedding programs all go through it. Results are the plain dataclasses of
:mod:`e3.model`; dataset values travel as canonical Beast2 bytes.

Every method is synchronous and may be called from any thread; long work (a
dataflow) runs in the background behind a :class:`Run`, whose events can also be
consumed with ``async for`` and whose end can be awaited
(:meth:`Run.wait_async`), so ``async def`` callers need no second API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from e3.base.paths import DatasetPath

if TYPE_CHECKING:
    # Annotations only. Defining a dataclass costs about a millisecond, and every
    # command imports this module: `e3 get` has no use for run records or events.
    from e3.model.events import Event
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
    from e3.model.runs import Isolation, RunOutcome, StartOptions
    from e3.records.dataflow import DataflowRun
    from e3.records.package import PackageObject

#: Longest single wait inside :class:`RunEvents` (keeps a stream responsive to its end).
_STREAM_WAIT = 5.0


class RunEvents:
    """A run's events from an offset until its end, for ``for`` and ``async for``.

    Works over any :class:`Run` through :meth:`Run.events_since` and
    :meth:`Run.events_since_async`, so local and remote runs stream alike.
    """

    def __init__(self, run: Run, offset: int = 0) -> None:
        self.run = run
        self.offset = offset

    def __iter__(self) -> Iterator[Event]:
        while True:
            events, running = self.run.events_since(self.offset, wait=_STREAM_WAIT)
            self.offset += len(events)
            yield from events
            if not running and not events:
                return

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            events, running = await self.run.events_since_async(self.offset, wait=_STREAM_WAIT)
            self.offset += len(events)
            for e in events:
                yield e
            if not running and not events:
                return


class Run(Protocol):
    """A dataflow run, in this process or anywhere else, found by :attr:`id`."""

    @property
    def id(self) -> str:
        """The run's id (a UUIDv7: ids sort by start time)."""
        ...

    @property
    def workspace(self) -> str:
        """The workspace it runs in."""
        ...

    def status(self) -> DataflowRun:
        """Its record now: ``running``, or how it ended, with counts."""
        ...

    def events(self, offset: int = 0) -> RunEvents:
        """Its events from ``offset`` on, as they happen, until it ends."""
        ...

    def events_since(self, offset: int, *, wait: float = 0.0) -> tuple[list[Event], bool]:
        """Events from ``offset`` that exist now, and whether the run is still going.

        With ``wait``, blocks up to that many seconds for a first event (or the end).
        """
        ...

    async def events_since_async(
        self, offset: int, *, wait: float = 0.0
    ) -> tuple[list[Event], bool]:
        """:meth:`events_since` without blocking an event loop."""
        ...

    def wait(self, timeout: float | None = None) -> RunOutcome:
        """Block until the run ends (raises :class:`~e3.errors.WaitTimedOut` after ``timeout``)."""
        ...

    async def wait_async(self, timeout: float | None = None) -> RunOutcome:
        """:meth:`wait` without blocking an event loop."""
        ...

    def cancel(self) -> None:
        """Ask the run to stop: its running tasks are killed, finished results kept."""
        ...


class StartsRuns:
    """``start`` with keyword options, for both kinds of repository (they give ``start_with``)."""

    def start_with(self, ws: str, options: StartOptions) -> Run:
        """Start a run with options already gathered (and checked)."""
        raise NotImplementedError

    def start(
        self,
        ws: str,
        *,
        filter: str | Sequence[str] = (),
        concurrency: int = 4,
        force: bool = False,
        keep_going: bool = False,
        timeout: float | None = None,
        isolation: Isolation = "warm",
        cluster: str | None = None,
    ) -> Run:
        """Start the workspace's dataflow and return at once (see :meth:`Repository.start`)."""
        from e3.model.runs import start_options

        return self.start_with(
            ws,
            start_options(
                filter=filter,
                concurrency=concurrency,
                force=force,
                keep_going=keep_going,
                timeout=timeout,
                isolation=isolation,
                cluster=cluster,
            ),
        )


class Repository(Protocol):
    """Everything e3 can do to one repository, local or remote."""

    @property
    def location(self) -> str:
        """Path or URL of the repository, for messages."""
        ...

    def close(self) -> None:
        """Stop what this handle started (runs, connections); the repository stays."""
        ...

    def __enter__(self) -> Repository: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    # ── repository ───────────────────────────────────────────────────────
    def repo_status(self) -> RepoStatus:
        """Counts, packages and workspaces."""
        ...

    def repo_remove(self) -> None:
        """Delete the repository with everything in it."""
        ...

    def gc(self, policy: GcPolicy | None = None) -> GcResult:
        """Collect what nothing needs any more (see :class:`~e3.model.retention.GcPolicy`)."""
        ...

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Check every object, ref and record; ``repair`` recomputes what it can."""
        ...

    # ── packages ─────────────────────────────────────────────────────────
    def package_import(self, zip_path: Path, *, force: bool = False) -> ImportResult:
        """Import a package zip."""
        ...

    def package_export(self, spec: str, out: Path) -> ExportResult:
        """Export ``name[@version]`` to a zip."""
        ...

    def package_list(self) -> list[PackageInfo]:
        """All packages."""
        ...

    def package_object(self, spec: str) -> tuple[PackageInfo, PackageObject]:
        """A package and its object (structure, tasks, initial values)."""
        ...

    def package_remove(self, spec: str) -> PackageInfo:
        """Remove ``name[@version]``."""
        ...

    # ── workspaces ───────────────────────────────────────────────────────
    def workspace_create(self, ws: str) -> None:
        """Create an empty workspace."""
        ...

    def workspace_deploy(self, ws: str, spec: str) -> PackageInfo:
        """Deploy ``name[@version]`` into a workspace (created if needed)."""
        ...

    def workspace_list(self) -> list[WorkspaceInfo]:
        """All workspaces."""
        ...

    def workspace_get(self, ws: str) -> WorkspaceInfo:
        """One workspace."""
        ...

    def workspace_remove(self, ws: str) -> None:
        """Delete a workspace."""
        ...

    def workspace_export(
        self, ws: str, out: Path, *, name: str | None = None, version: str | None = None
    ) -> ExportResult:
        """Export a workspace's current data (and its last run's results) as a package zip."""
        ...

    def workspace_import(self, ws: str, zip_path: Path, *, force: bool = False) -> ImportResult:
        """Import a zip and deploy it into ``ws``."""
        ...

    def workspace_status(self, ws: str, *, tasks: list[str] | None = None) -> WorkspaceStatus:
        """What a run would do now (task and dataset states, lock holders).

        ``tasks``: only these tasks (exact names), the tasks upstream of them and
        the datasets those read or write, which is what a view of one task needs
        and on a large workspace a small part of the whole.
        """
        ...

    def task_list(self, ws: str) -> list[TaskInfo]:
        """The tasks of the deployed package, in dependency order."""
        ...

    # ── datasets ─────────────────────────────────────────────────────────
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

    def dataset_save(self, ws: str, path: DatasetPath, out: Path) -> tuple[Any, int | None]:
        """Write a dataset's Beast2 bytes to ``out`` without holding them in memory.

        Returns the declared type and the size written (``None``, and nothing
        written, for null).
        """
        ...

    def dataset_set(self, ws: str, path: DatasetPath, data: bytes) -> str:
        """Set a dataset from Beast2 bytes; returns the stored hash."""
        ...

    # ── dataflows ────────────────────────────────────────────────────────
    def start(
        self,
        ws: str,
        *,
        filter: str | Sequence[str] = (),
        concurrency: int = 4,
        force: bool = False,
        keep_going: bool = False,
        timeout: float | None = None,
        isolation: Isolation = "warm",
        cluster: str | None = None,
    ) -> Run:
        """Start the workspace's dataflow and return at once.

        Refusals (another run holds the workspace, an unknown task in ``filter``)
        are raised here: a run that is returned has been accepted and will run.
        """
        ...

    def start_with(self, ws: str, options: StartOptions) -> Run:
        """:meth:`start` with :class:`~e3.model.runs.StartOptions` already gathered."""
        ...

    def runs(self, ws: str, *, last: int | None = None, brief: bool = False) -> list[DataflowRun]:
        """Past and current runs of a workspace (``last``: only the newest so many), oldest first.

        Only the newest run can be running, so ``last=1`` answers "is one running?".
        ``brief``: records without per-task detail (no input or output versions,
        no task executions), which a listing does not show and a large dataflow's
        records are mostly made of.
        """
        ...

    def run(self, run_id: str) -> Run:
        """A run by id, whichever process or server started it."""
        ...

    def task_logs(self, ws: str) -> list[TaskLogSummary]:
        """Every task with its latest state and number of executions."""
        ...

    def task_execution(self, ws: str, task: str) -> ExecutionInfo:
        """The execution whose logs ``e3 logs ws.task`` shows."""
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
        """Run one task of a package on input files (``e3 run``), memoized like any other."""
        ...


def running_run_id(repo: Repository, ws: str) -> str | None:
    """The id of the run going on in ``ws``, if one is.

    Runs of a workspace never overlap, so only the newest can be running: one
    brief record answers, however long the history (``e3 cancel``, ``e3 logs``,
    the web view's Cancel).
    """
    newest = repo.runs(ws, last=1, brief=True)
    return newest[-1].run_id if newest and newest[-1].status == "running" else None
