"""What an API server keeps between requests: repositories, jobs, transfers, dataflows.

Everything here is in memory (a restart forgets jobs and transfers, as in the
reference) except the repositories themselves. Ids handed to clients come from
``secrets`` and are not guessable; upload bodies stream to files in the
server's private spool directory, never into memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e3.base.procs import ProcessIdentity, boot_id, current_identity
from e3.errors import (
    ConflictError,
    E3Error,
    InvalidName,
    JobNotFound,
    RepositoryExists,
    RepositoryNotFound,
    UsageError,
)
from e3.model.events import Event
from e3.model.results import DataflowResult, JobStatus, TaskProblem
from e3.runners.base import RunnerRegistry
from e3.store.repository import RepoStore, create_repository, is_repository, open_repository

_REPO_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
#: Name of the repository a single-repository server serves.
DEFAULT_REPO = "default"
#: Most warm East workers a server keeps (runs share them).
MAX_WORKERS = 64
#: Uploads and downloads not used within this many seconds are forgotten.
TRANSFER_TTL = 3600.0


def new_id() -> str:
    """An unguessable id (192 random bits)."""
    return secrets.token_urlsafe(24)


class Repositories:
    """The repositories a server serves.

    Every repository directory under ``root`` (multi-repository mode), or one
    repository named ``default``.
    """

    def __init__(
        self, *, root: Path | None = None, single: Path | None = None, durable: bool = True
    ) -> None:
        if (root is None) == (single is None):
            raise UsageError("serve either --repos DIR or --repo PATH")
        self.root = root
        self.single = single
        self.durable = durable

    @property
    def multi(self) -> bool:
        """Whether repositories can be created and deleted over the API."""
        return self.root is not None

    def names(self) -> list[str]:
        """Names of the repositories served."""
        if self.single is not None:
            return [DEFAULT_REPO]
        assert self.root is not None
        return sorted(
            p.name for p in self.root.iterdir() if _REPO_NAME.fullmatch(p.name) and is_repository(p)
        )

    def path(self, name: str) -> Path:
        """Directory of a repository name (validated: no escaping the root)."""
        if self.single is not None:
            if name != DEFAULT_REPO:
                raise RepositoryNotFound(f"repository '{name}' not found", repo=name)
            return self.single
        if not _REPO_NAME.fullmatch(name) or name in (".", ".."):
            raise InvalidName(f"invalid repository name {name!r}")
        assert self.root is not None
        return self.root / name

    def open(self, name: str) -> RepoStore:
        """Open a served repository."""
        path = self.path(name)
        if not is_repository(path):
            raise RepositoryNotFound(f"repository '{name}' not found", repo=name)
        return open_repository(path, durable=self.durable)

    def create(self, name: str) -> RepoStore:
        """Create a repository (multi-repository mode)."""
        path = self.path(name)
        if is_repository(path):
            raise RepositoryExists(f"repository '{name}' already exists", repo=name)
        repo, _ = create_repository(path, durable=self.durable)
        return repo


class Notifier:
    """Wakes coroutines, on whatever event loop they wait, when something changed.

    Long polls wait here instead of holding a worker thread each, so any number
    of clients can follow runs and jobs without starving the server's thread pool.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def notify(self) -> None:
        """Wake every waiter (callable from any thread)."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_resolve, fut)

    async def wait(self, ready: Callable[[], bool], timeout: float) -> None:
        """Return once ``ready()`` holds, or after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            fut: asyncio.Future[None] = loop.create_future()
            with self._lock:
                self._waiters.append((loop, fut))
            if ready():  # changed between the check and the registration
                return
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                with self._lock, contextlib.suppress(ValueError):
                    self._waiters.remove((loop, fut))
                return


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass
class Job:
    """An asynchronous operation (import, export, gc)."""

    id: str
    repo: str
    kind: str
    status: JobStatus = field(default_factory=lambda: JobStatus("running"))
    finished_at: float | None = None
    changed: Notifier = field(default_factory=Notifier)

    @property
    def done(self) -> bool:
        """Whether the job has ended."""
        return self.finished_at is not None


class Jobs:
    """Jobs run on a small thread pool; their status is kept for an hour."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="e3-job")
        self._lock = threading.Lock()

    def start(self, repo: str, kind: str, work: Callable[[], JobStatus]) -> Job:
        """Run ``work`` in the background; its return value becomes the job's status."""
        job = Job(new_id(), repo, kind)
        with self._lock:
            self._expire()
            self._jobs[job.id] = job

        def run() -> None:
            try:
                job.status = work()
            except E3Error as exc:
                job.status = JobStatus("failed", message=exc.message, error_code=exc.spec.code)
            except Exception as exc:
                job.status = JobStatus(
                    "failed", message=f"internal error: {type(exc).__name__}: {exc}"
                )
            job.finished_at = time.monotonic()
            job.changed.notify()

        self._pool.submit(run)
        return job

    def get(self, repo: str, kind: str, job_id: str) -> Job:
        """A job of this kind (``import``, ``export``, ``gc``) on this repository."""
        job = self._jobs.get(job_id)
        if job is None or job.repo != repo or job.kind != kind:
            raise JobNotFound(f"no job {job_id!r}", id=job_id)
        return job

    def _expire(self) -> None:
        now = time.monotonic()
        for k in [
            k
            for k, j in self._jobs.items()
            if j.finished_at is not None and now - j.finished_at > TRANSFER_TTL
        ]:
            del self._jobs[k]

    def close(self) -> None:
        """Stop accepting jobs."""
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class Upload:
    """An announced upload: where its bytes go and how many are expected."""

    id: str
    path: Path
    size: int
    purpose: str
    repo: str
    target: str = ""
    hash: str = ""
    #: announced -> receiving (one PUT at a time) -> received -> claimed (by one commit)
    state: str = "announced"
    created: float = field(default_factory=time.monotonic)


@dataclass
class Download:
    """Bytes waiting to be fetched once."""

    id: str
    path: Path
    content_type: str
    sha256: str
    created: float = field(default_factory=time.monotonic)


class Transfers:
    """Uploads and downloads, spooled in a private directory."""

    def __init__(self, spool: Path | None = None) -> None:
        if spool is None:
            _remove_abandoned_spools()
            me = current_identity()
            spool = Path(tempfile.mkdtemp(prefix=f"e3-server-{me.pid}-{me.start_time}-"))
        self.spool = spool
        self.spool.mkdir(parents=True, exist_ok=True)
        self.uploads: dict[str, Upload] = {}
        self.downloads: dict[str, Download] = {}
        self._lock = threading.Lock()

    def new_upload(
        self, repo: str, size: int, purpose: str, *, target: str = "", hash_: str = ""
    ) -> Upload:
        """Announce an upload of ``size`` bytes."""
        with self._lock:
            self._expire()
            up = Upload(new_id(), Path(), size, purpose, repo, target, hash_)
            up.path = self.spool / f"up-{up.id}"
            self.uploads[up.id] = up
            return up

    def upload(self, upload_id: str) -> Upload:
        """An announced upload."""
        up = self.uploads.get(upload_id)
        if up is None:
            raise JobNotFound(f"no upload {upload_id!r}", id=upload_id)
        return up

    def begin_receiving(self, upload_id: str) -> Upload:
        """Admit one ``PUT`` of an upload's bytes (a second, concurrent or later, is refused)."""
        with self._lock:
            up = self.upload(upload_id)
            if up.state != "announced":
                raise ConflictError(f"upload {upload_id!r} is {up.state}, not waiting for bytes")
            up.state = "receiving"
            return up

    def end_receiving(self, up: Upload, ok: bool) -> None:
        """The ``PUT`` ended: the bytes are in place, or the upload may be tried again."""
        with self._lock:
            up.state = "received" if ok else "announced"

    def claim(self, upload_id: str, repo: str, purpose: str, target: str | None = None) -> Upload:
        """Take a received upload for one commit (import, dataset set, run input).

        Raises:
            JobNotFound: no such upload for this repository, purpose and target.
            ConflictError: its bytes have not arrived, or another commit took it.
        """
        with self._lock:
            up = self.uploads.get(upload_id)
            if (
                up is None
                or up.repo != repo
                or up.purpose != purpose
                or (target is not None and up.target != target)
            ):
                raise JobNotFound(f"no {purpose} upload {upload_id!r} here", id=upload_id)
            if up.state != "received":
                raise ConflictError(f"upload {upload_id!r} is {up.state}, not ready to commit")
            up.state = "claimed"
            return up

    def finish_upload(self, upload_id: str) -> None:
        """Forget an upload and its bytes."""
        with self._lock:
            up = self.uploads.pop(upload_id, None)
        if up is not None:
            with contextlib.suppress(FileNotFoundError):
                up.path.unlink()

    def new_download(self, data_path: Path, content_type: str, sha256: str) -> Download:
        """Offer a file (moved into the spool) for one download."""
        with self._lock:
            self._expire()
            d = Download(new_id(), Path(), content_type, sha256)
            d.path = self.spool / f"down-{d.id}"
            shutil.move(str(data_path), d.path)
            self.downloads[d.id] = d
            return d

    def take_download(self, download_id: str) -> Download:
        """A download, removed from the table (one-shot)."""
        with self._lock:
            d = self.downloads.pop(download_id, None)
        if d is None:
            raise JobNotFound(f"no download {download_id!r}", id=download_id)
        return d

    def _expire(self) -> None:
        now = time.monotonic()
        for table in (self.uploads, self.downloads):
            for k in [k for k, v in table.items() if now - v.created > TRANSFER_TTL]:
                item = table.pop(k)
                with contextlib.suppress(FileNotFoundError):
                    item.path.unlink()

    def close(self) -> None:
        """Delete the spool."""
        shutil.rmtree(self.spool, ignore_errors=True)


_SPOOL_NAME = re.compile(r"e3-server-(\d+)-(\d+)-")


def _remove_abandoned_spools() -> None:
    """Delete spools left by this user's servers that died without cleaning up.

    A SIGKILLed server leaves its spool, with any half-received uploads, in the
    temporary directory; the next server to start removes it.
    """
    root = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            m = _SPOOL_NAME.match(entry.name)
            if not m or not entry.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                    continue
                owner = ProcessIdentity(int(m.group(1)), int(m.group(2)), boot_id())
                if not owner.is_alive():
                    shutil.rmtree(entry.path, ignore_errors=True)


@dataclass
class ActiveRun:
    """A dataflow run the server is executing on its engine loop."""

    repo: str
    workspace: str
    cancel: asyncio.Event
    loop: asyncio.AbstractEventLoop
    id: str = field(default_factory=lambda: new_id())
    events: list[Event] = field(default_factory=list)
    result: DataflowResult | None = None
    error: E3Error | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    future: concurrent.futures.Future[None] | None = None
    changed: Notifier = field(default_factory=Notifier)

    @property
    def running(self) -> bool:
        """Whether the run has not ended yet."""
        return self.finished is None

    def add_event(self, event: Event) -> None:
        """Record an event and wake long-polling readers."""
        self.events.append(event)
        self.changed.notify()

    def finish(self) -> None:
        """Mark the run over and wake every waiting reader."""
        self.finished = time.time()
        self.changed.notify()

    def request_cancel(self) -> None:
        """Ask the run to stop: it kills its running tasks and records itself cancelled."""
        self.loop.call_soon_threadsafe(self.cancel.set)

    async def wait_for_events(self, offset: int, timeout: float) -> None:
        """Return once there are more than ``offset`` events or the run ended (or on timeout)."""
        await self.changed.wait(lambda: len(self.events) > offset or not self.running, timeout)


class Dataflows:
    """The dataflow runs a server has started, by repository and workspace.

    Every run executes on one engine thread with its own event loop, and the
    runners (in particular the warm East worker pool) live on that loop for
    the server's lifetime: a run started over HTTP finds workers that have
    already imported east-py and compiled its functions, where a CLI run pays
    for starting them.
    """

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], ActiveRun] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._registries: dict[str, RunnerRegistry] = {}

    def _engine(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="e3-engine", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _registry(self, isolation: str) -> RunnerRegistry:
        """Runners shared by every run of one isolation mode (engine loop only).

        The warm pool grows with demand, up to :data:`MAX_WORKERS` workers, and each
        run's own concurrency limit bounds what it asks for.
        """
        from e3.runners.base import default_registry

        reg = self._registries.get(isolation)
        if reg is None:
            reg = default_registry(isolation=isolation, max_workers=MAX_WORKERS)
            self._registries[isolation] = reg
        return reg

    def start(self, repo_name: str, repo: RepoStore, ws: str, options: Any) -> ActiveRun:
        """Start a run in the background (the workspace locks refuse a second one)."""
        from e3.dataflow.scheduler import run_dataflow
        from e3.errors import LockConflict
        from e3.store import locks

        # Refuse at once, with the engine's own message, if a run is going on.
        probe = locks.acquire(
            repo.dataflow_lock_path(ws),
            "exclusive",
            operation="dataflow",
            label=f"dataflow of workspace '{ws}'",
        )
        probe.release()
        loop = self._engine()
        run = ActiveRun(repo_name, ws, asyncio.Event(), loop)

        async def go() -> None:
            try:
                registry = self._registry(options.isolation)
                outcome = await run_dataflow(
                    repo, ws, options, on_event=run.add_event, registry=registry, cancel=run.cancel
                )
                run.result = result_of(outcome)
            except E3Error as exc:
                run.error = exc
            except Exception as exc:
                run.error = E3Error(f"internal error: {type(exc).__name__}: {exc}")
            finally:
                run.finish()

        with self._lock:
            current = self.runs.get((repo_name, ws))
            if current is not None and current.running:
                raise LockConflict(
                    f"a dataflow is already running in workspace '{ws}'", workspace=ws
                )
            self.runs[(repo_name, ws)] = run
            run.future = asyncio.run_coroutine_threadsafe(go(), loop)
        return run

    def get(self, repo_name: str, ws: str) -> ActiveRun | None:
        """The latest run the server started on a workspace."""
        return self.runs.get((repo_name, ws))

    def close(self, timeout: float = 30.0) -> None:
        """Cancel every running dataflow (server shutdown), wait for them, stop the runners."""
        runs = list(self.runs.values())
        for run in runs:
            if run.running:
                run.request_cancel()
        for run in runs:
            if run.future is not None:
                with contextlib.suppress(Exception):
                    run.future.result(timeout)
        loop = self._loop
        if loop is None:
            return

        async def close_runners() -> None:
            for reg in self._registries.values():
                await reg.close()
            self._registries.clear()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close_runners(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        self._loop = None


def result_of(outcome: Any) -> DataflowResult:
    """The wire form of a scheduler :class:`~e3.dataflow.scheduler.RunOutcome`."""
    c = outcome.counts
    counts = {
        "total": c.total,
        "executed": c.executed,
        "cached": c.cached,
        "failed": c.failed,
        "skipped": c.skipped,
        "waiting": c.waiting,
        "pending": c.pending,
        "reexecuted": c.reexecuted,
        "completed": c.completed,
    }
    return DataflowResult(
        outcome.run_id,
        outcome.status,
        counts,
        outcome.duration,
        [TaskProblem(n, r) for n, r in outcome.failed],
        [TaskProblem(n, r) for n, r in outcome.waiting],
        list(outcome.not_started),
    )
