"""The engine side: :class:`DaskRunner` runs each e3 execution as one Dask task.

A task's key is ``e3-<execution id>``, so a resubmission of the same
execution is one Dask task. Its inputs go by hash: while the workers see the
repository's file system, by hash only (the worker reads and verifies the
stored object in place); the first worker that cannot read it makes the
engine send inputs from then on: small ones (up to the ``e3.inline-limit``
setting) with the task, larger ones scattered by the engine straight to a
worker (never through the scheduler), once, and shared by every task that
needs them.

Faults:

* a worker that dies while running a task: Dask runs the task elsewhere
  (nothing is recorded twice: the engine records the execution once, when the
  task ends); a task that kills every worker it runs on ends as an error
  after Dask's ``allowed-failures``;
* a task failing on its own is a result like any other (never retried);
* a lost scheduler stops the run (:class:`~e3.errors.ClusterUnavailable`);
* a worker with other e3 or east-py versions stops the run before its task runs;
* cancelling the awaiting coroutine cancels the Dask task and kills the
  command's processes on the worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from e3.errors import ClusterUnavailable, ClusterVersionMismatch
from e3.runners.base import OnStart, RunRequest, RunResult, TaskFiles
from e3.runners.dask.cluster import ClusterAddress, check_versions, open_cluster, setting
from e3.runners.dask.spec import (
    TASK_VARIABLES,
    InputRef,
    InputUnavailable,
    TaskReply,
    TaskSpec,
    VersionMismatch,
    local_versions,
)

#: Scattered inputs kept on the cluster for later tasks (bytes; oldest released first).
SCATTER_CACHE = 1 << 30
#: Resubmissions of one execution after the cluster lost what it needed (not task failures).
MAX_RESUBMIT = 3
#: Head room kept below the log cap for the truncation note.
_NOTE_ROOM = 256


class DaskRunner:
    """Runs every command on a Dask cluster (see the module docstring)."""

    name = "dask"

    def __init__(self, address: ClusterAddress, *, isolation: str = "warm") -> None:
        self.address = address
        self.isolation = isolation
        self.versions = local_versions()
        self._client: Any = None
        self._cluster: Any = None
        #: Clients whose scheduler was lost: closed with the runner.
        self._broken: list[tuple[Any, Any]] = []
        self._connecting: asyncio.Lock | None = None
        self._inline_limit: int | None = None
        #: Repository root → whether workers read inputs from it (until one cannot).
        self.shared: dict[str, bool] = {}
        self._scattered: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._scattered_bytes = 0
        self.workers = 0

    def accepts(self, argv: object) -> bool:
        """Every command runs on the cluster."""
        return True

    # ── connection ───────────────────────────────────────────────────────
    async def prepare(self) -> None:
        """Connect (again, if the scheduler was lost) and check the workers' versions."""
        await self._connected()

    async def _connected(self) -> Any:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._client is not None and self._client.status == "running":
                return self._client
            await self._drop_client()
            client, cluster = await open_cluster(self.address)
            try:
                self.workers = await check_versions(client)
            except BaseException:
                await _close(client, cluster)
                raise
            self._client, self._cluster = client, cluster
            return client

    async def _drop_client(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        self._scattered.clear()
        self._scattered_bytes = 0
        if client is not None:
            await _close(client, cluster)

    async def close(self) -> None:
        """Disconnect (and stop a local cluster)."""
        await self._drop_client()
        broken, self._broken = self._broken, []
        for client, cluster in broken:
            await _close(client, cluster)

    def _lost(self, client: Any, why: BaseException) -> ClusterUnavailable:
        if client is self._client:
            # The next run connects again; this client is closed with the runner.
            self._broken.append((client, self._cluster))
            self._client = self._cluster = None
        if "connection-lost" in str(why) or isinstance(why, concurrent.futures.CancelledError):
            detail = "the connection closed (the scheduler stopped, or its host is unreachable)"
        else:
            text = str(why).strip()
            detail = text.splitlines()[0] if text else type(why).__name__
        return ClusterUnavailable(f"lost the Dask scheduler at {self.address}: {detail}")

    # ── running ──────────────────────────────────────────────────────────
    async def run(self, request: RunRequest, on_start: OnStart) -> RunResult:
        """Run one execution on the cluster; its output and logs land where ``request`` says."""
        files = request.files
        if files is None:
            return RunResult(error="the cluster runner needs the task behind the command")
        client = await self._connected()
        # The running record names the engine: the execution is alive while it is.
        on_start(os.getpid())
        eid = request.env.get("E3_EXECUTION_ID", "") or request.label
        key = f"e3-{eid}"
        for attempt in range(MAX_RESUBMIT + 1):
            spec, args = await self._spec(client, request, files, eid)
            future = client.submit(_task_function(), spec, *args, key=key, pure=False, retries=0)
            try:
                reply: TaskReply = await future
            except asyncio.CancelledError:
                await asyncio.shield(self._cancel(client, future, eid))
                raise
            except InputUnavailable:
                self.shared[files.repo_root] = False  # send large inputs from now on
            except VersionMismatch as exc:
                raise ClusterVersionMismatch(str(exc)) from None
            except concurrent.futures.CancelledError as exc:
                # Cancelled by Dask, not by us: the scheduler went away, or scattered
                # inputs were lost with their worker (sent again below).
                if client.status != "running" or "connection-lost" in str(exc):
                    raise self._lost(client, exc) from None
                self._forget_scattered(spec)
            except (OSError, TimeoutError) as exc:
                raise self._lost(client, exc) from None
            except Exception as exc:
                return _failed_on_cluster(exc)
            else:
                _write_reply(reply, request, files)
                return _result(reply)
            finally:
                future.release()
            key = f"e3-{eid}-{attempt + 1}"
        return RunResult(error="the cluster lost this task's inputs repeatedly")

    async def _spec(
        self, client: Any, request: RunRequest, files: TaskFiles, eid: str
    ) -> tuple[TaskSpec, list[Any]]:
        """The task's spec and its extra arguments (futures of scattered inputs)."""
        limit = self.inline_limit()
        args: list[Any] = []
        refs: list[InputRef] = []
        shared = self.shared.get(files.repo_root, True)
        command = (files.command_hash, None)
        for h, path in (command, *files.inputs):
            data = files.command_ir if path is None else None
            if shared and path:
                # The worker reads (and verifies) it in place: no bytes through the
                # scheduler, no copy written on the worker.
                refs.append(InputRef(h))
                continue
            size = len(data) if data is not None else os.stat(path).st_size if path else 0
            if size <= limit:
                if data is None and path is not None:
                    data = Path(path).read_bytes()
                refs.append(InputRef(h, data))
            else:
                args.append(await self._scatter(client, h, data or Path(path or "").read_bytes()))
                refs.append(InputRef(h, arg=len(args) - 1))
        spec = TaskSpec(
            execution_id=eid,
            versions=self.versions,
            command=refs[0],
            inputs=tuple(refs[1:]),
            repo_root=files.repo_root,
            # Only the task's own variables travel (the worker adds them to its environment).
            env={k: v for k, v in request.env.items() if k in TASK_VARIABLES},
            timeout=request.timeout,
            log_limit=max(0, files.log_limit - _NOTE_ROOM),
            isolation=self.isolation,
            label=request.label,
        )
        return spec, args

    def inline_limit(self) -> int:
        """Bytes up to which an input travels with its task (``e3.inline-limit``)."""
        if self._inline_limit is None:
            from dask.utils import parse_bytes

            value = setting("inline-limit")
            self._inline_limit = value if isinstance(value, int) else parse_bytes(str(value))
        return self._inline_limit

    async def _scatter(self, client: Any, h: str, data: bytes) -> Any:
        """A future of the object on the cluster (scattered once, straight to a worker)."""
        held = self._scattered.get(h)
        if held is not None and held[0].status == "finished":
            self._scattered.move_to_end(h)
            return held[0]
        key = f"e3-object-{h}"
        futures = await client.scatter({key: data}, direct=True, hash=False)
        future = futures[key]
        self._scattered[h] = (future, len(data))
        self._scattered_bytes += len(data)
        while self._scattered_bytes > SCATTER_CACHE and len(self._scattered) > 1:
            _, (old, size) = self._scattered.popitem(last=False)
            self._scattered_bytes -= size
            old.release()
        return future

    def _forget_scattered(self, spec: TaskSpec) -> None:
        for ref in spec.inputs:
            held = self._scattered.pop(ref.hash, None)
            if held is not None:
                self._scattered_bytes -= held[1]

    async def _cancel(self, client: Any, future: Any, eid: str) -> None:
        """Cancel the Dask task and kill the command on whichever worker runs it."""
        from e3.runners.dask.worker import cancel_execution

        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await client.cancel([future], force=True)
                await client.run(cancel_execution, eid, on_error="ignore")


def _task_function() -> Any:
    from e3.runners.dask.worker import run_task

    return run_task


async def _close(client: Any, cluster: Any) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await client.close()
    if cluster is not None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await cluster.close()


def _failed_on_cluster(exc: BaseException) -> RunResult:
    """A Dask-level failure of the task (not the command's own): an error result."""
    if type(exc).__name__ == "KilledWorker":
        return RunResult(
            error="the task's worker died each time it ran it (killed, or out of memory?)"
        )
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return RunResult(error=f"cluster task failed: {type(exc).__name__}: {text}"[:500])


def _write_reply(reply: TaskReply, request: RunRequest, files: TaskFiles) -> None:
    """The output and logs where a local command would have left them."""
    for data, dropped, path in (
        (reply.stdout, reply.stdout_dropped, request.stdout),
        (reply.stderr, reply.stderr_dropped, request.stderr),
    ):
        with open(path, "wb") as f:
            f.write(data)
            if dropped:
                f.write(
                    f"\n[e3: log truncated: {dropped} more bytes were written "
                    f"beyond the {files.log_limit}-byte limit]\n".encode()
                )
    with contextlib.suppress(FileNotFoundError):
        os.unlink(files.output)
    if reply.output_is_dir:
        files.output.mkdir()
    elif reply.output is not None:
        with open(files.output, "wb") as f:
            f.write(reply.output)


def _result(reply: TaskReply) -> RunResult:
    return RunResult(
        exit_code=reply.exit_code,
        signal=reply.signal,
        error=reply.error,
        timed_out=reply.timed_out,
        worker=reply.worker,
    )
