"""The engine: executes dataflow runs of local repositories on one event-loop thread.

Runs are prepared in the caller's thread (so a refusal is raised to the caller
at once) and executed on the engine's loop. The runners, above all the pool of
warm East workers, live on that loop as long as the engine does: a server's
engine serves every run from workers that have already imported east-py and
compiled its functions, where each CLI process pays for starting them once.

A run on a cluster (``StartOptions.cluster``) uses runners of their own, kept
per cluster address: the engine connects (or starts a local cluster) and
checks the workers before the run is accepted, so an unreachable scheduler or
a worker of another version is a refusal raised by :meth:`Engine.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from e3.api.runs import LocalRun
from e3.dataflow.prepare import PreparedRun, prepare_run
from e3.dataflow.scheduler import execute_run
from e3.errors import ClusterUnavailable, E3Error
from e3.model.runs import StartOptions
from e3.runners.base import RunnerRegistry
from e3.runners.registry import default_registry
from e3.store.repository import RepoStore

#: Most warm East workers an engine keeps (each run's concurrency bounds what it asks for).
MAX_WORKERS = 64
#: Finished runs kept in memory for callers that ask about them again.
KEEP_FINISHED = 256
#: How long connecting to a cluster (or starting a local one) may take before a run is refused.
CLUSTER_START_TIMEOUT = 120.0


class Engine:
    """Runs dataflows in the background of this process (see the module docstring)."""

    def __init__(self, *, max_workers: int = MAX_WORKERS) -> None:
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._registries: dict[tuple[str, str | None], RunnerRegistry] = {}
        self._runs: dict[str, LocalRun] = {}

    def _engine_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="e3-engine", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _registry(self, isolation: str, cluster: str | None = None) -> RunnerRegistry:
        """Runners shared by every run of one isolation mode and cluster (engine loop only)."""
        reg = self._registries.get((isolation, cluster))
        if reg is None:
            reg = default_registry(
                isolation=isolation, max_workers=self.max_workers, cluster=cluster
            )
            self._registries[(isolation, cluster)] = reg
        return reg

    def _connect(self, options: StartOptions) -> None:
        """Connect to the run's cluster and check its workers (refusals raise here)."""
        if options.cluster is None:
            return

        async def connect() -> None:
            await self._registry(options.isolation, options.cluster).prepare()

        loop = self._engine_loop()
        try:
            asyncio.run_coroutine_threadsafe(connect(), loop).result(CLUSTER_START_TIMEOUT)
        except TimeoutError:
            raise ClusterUnavailable(
                f"the cluster {options.cluster} was not ready after {CLUSTER_START_TIMEOUT:g} s"
            ) from None

    def start(self, store: RepoStore, ws: str, options: StartOptions) -> LocalRun:
        """Prepare a run here (refusals raise now), then execute it in the background."""
        self._connect(options)
        prepared = prepare_run(store, ws, options)
        try:
            loop = self._engine_loop()
            run = LocalRun(store, ws, prepared.run_id)
            cancel = asyncio.Event()
            run.attach(loop, cancel)
            with self._lock:
                self._forget_old()
                self._runs[run.id] = run
            asyncio.run_coroutine_threadsafe(self._execute(prepared, run, cancel), loop)
        except BaseException:
            prepared.release()
            raise
        return run

    async def _execute(self, prepared: PreparedRun, run: LocalRun, cancel: asyncio.Event) -> None:
        try:
            registry = self._registry(prepared.options.isolation, prepared.options.cluster)
            outcome = await execute_run(
                prepared, registry=registry, on_event=run.add_event, cancel=cancel
            )
        except E3Error as exc:
            run.finish(None, exc)
        except BaseException as exc:  # a bug: report it to whoever waits, as an E3Error
            run.finish(None, E3Error(f"internal error: {type(exc).__name__}: {exc}"))
        else:
            run.finish(outcome, None)

    def get(self, run_id: str) -> LocalRun | None:
        """A run this engine started (while it is remembered)."""
        return self._runs.get(run_id)

    def _forget_old(self) -> None:
        finished = [k for k, r in self._runs.items() if r.done]
        for k in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._runs[k]

    def close(self, timeout: float = 30.0) -> None:
        """Cancel every run still going, wait for them to record it, stop the runners."""
        runs = list(self._runs.values())
        for run in runs:
            run.cancel()
        for run in runs:
            with contextlib.suppress(Exception):
                run.wait(timeout)
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
        with contextlib.suppress(RuntimeError):
            loop.close()
        self._loop = self._thread = None
