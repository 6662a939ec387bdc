"""The warm East runner: ``east-py run`` commands executed by a pool of warm workers.

A plain ``east-py run`` process spends 0.1-0.3 s starting Python and importing
east-py before it runs a function that often takes microseconds. This runner
keeps workers (:mod:`e3.runners.east_worker`) that did those imports once and
sends them the same argv. Results are the process runner's, with the task's log
files as the worker's stdout and stderr; for the plain argv e3 generates, the
worker calls the function directly and answers with the output in e3's
canonical form, small outputs in the reply itself (no file written, read or
re-encoded), and with the sizes of the logs it wrote.

Isolation: one task at a time per worker; a worker that crashes fails only the
task it was running and is replaced; a worker whose memory peaked past a limit
(its peak resident set: one system call per task, where the current one took
ten), or that served many tasks, is retired; a timeout or cancellation kills the
worker (its whole process group).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import subprocess
from collections.abc import Sequence
from typing import Any

from e3.runners.base import OnStart, RunRequest, RunResult
from e3.runners.early import spawn_worker, take_worker
from e3.runners.east_worker import frame, split_frames
from e3.runners.guardian import Guardian, kill_group

#: Peak memory a worker may reach before it is retired (bytes).
DEFAULT_RSS_LIMIT = 1 << 30
#: How long a task waits for a busy worker before another worker is started (seconds).
SPAWN_PATIENCE = 0.05
#: Environment variables that change from task to task.
_PER_TASK = ("E3_TASK", "E3_EXECUTION_ID")
#: Tasks a worker serves before it is retired.
DEFAULT_MAX_TASKS = 10_000


class WorkerDied(Exception):
    """The worker process ended while we waited for it."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"worker exited ({returncode})")
        self.returncode = returncode


class _Worker:
    """One warm worker process and its reply channel."""

    def __init__(self, proc: subprocess.Popen[bytes], reply_fd: int) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.reply_fd = reply_fd
        self.tasks = 0
        self.rss = 0
        self.env: dict[str, str] | None = None
        self.alive = True
        self._buffer = bytearray()
        self._messages: list[tuple[dict[str, Any], bytes]] = []
        self._waiter: asyncio.Future[tuple[dict[str, Any], bytes]] | None = None
        self._closed_reader = False
        asyncio.get_running_loop().add_reader(reply_fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self.reply_fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            self._close_reader()
            self.alive = False
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(WorkerDied(self.proc.poll()))
            return
        self._buffer += chunk
        self._messages.extend(split_frames(self._buffer))
        if self._messages and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(self._messages.pop(0))

    def _close_reader(self) -> None:
        if not self._closed_reader:
            self._closed_reader = True
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.reply_fd)
            with contextlib.suppress(OSError):
                os.close(self.reply_fd)

    async def reply(self) -> tuple[dict[str, Any], bytes]:
        """The next message from the worker, and its payload."""
        if self._messages:
            return self._messages.pop(0)
        if not self.alive:
            raise WorkerDied(self.proc.poll())
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def send(self, message: dict[str, Any]) -> None:
        """Send a request (the reply is awaited with :meth:`reply`)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(frame(message))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.alive = False
            raise WorkerDied(self.proc.poll()) from None

    def kill(self) -> None:
        """Kill the worker and anything it started."""
        self.alive = False
        kill_group(self.pid)
        self._close_reader()
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        self.proc.wait()

    def stop(self) -> None:
        """Ask the worker to exit (EOF), and reap it."""
        self.alive = False
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(self.pid)
            self.proc.wait()
        self._close_reader()


class WarmEastRunner:
    """Runs ``east-py run`` argvs on warm workers."""

    name = "east-warm"

    def __init__(
        self,
        *,
        max_workers: int = 4,
        guardian: Guardian | None = None,
        rss_limit: int = DEFAULT_RSS_LIMIT,
        max_tasks: int = DEFAULT_MAX_TASKS,
        env: dict[str, str] | None = None,
    ) -> None:
        self.max_workers = max(1, max_workers)
        self.guardian = guardian or Guardian()
        self.rss_limit = rss_limit
        self.max_tasks = max_tasks
        self.env = env
        self._idle: list[_Worker] = []
        self._count = 0
        self._available: asyncio.Condition | None = None
        self._importable: dict[str, bool] = {}
        self._patience_over = False
        self._starting = 0
        #: Tasks waiting on the pool's condition for a worker to come free.
        self._waiting = 0
        self.spawned = 0

    # ── selection ────────────────────────────────────────────────────────
    def accepts(self, argv: Sequence[str]) -> bool:
        """``east-py run …`` whose platform packages are importable here."""
        if len(argv) < 2 or os.path.basename(argv[0]) != "east-py" or argv[1] != "run":
            return False
        packages = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-p", "--package")]
        return all(self._can_import(p) for p in packages)

    def _can_import(self, package: str) -> bool:
        module = package.replace("-", "_")
        if module not in self._importable:
            self._importable[module] = importlib.util.find_spec(module) is not None
        return self._importable[module]

    # ── pool ─────────────────────────────────────────────────────────────
    async def _spawn(self) -> _Worker:
        early = take_worker() if self.env is None else None
        proc, r = early if early is not None else spawn_worker(self.env)
        self.guardian.register(proc.pid)
        worker = _Worker(proc, r)
        self.spawned += 1
        try:
            hello, _ = await worker.reply()
        except WorkerDied:
            self.guardian.unregister(proc.pid)
            raise
        if not hello.get("ready"):
            worker.kill()
            raise WorkerDied(None)
        return worker

    async def _acquire(self) -> _Worker:
        """An idle worker, or a new one.

        A worker takes a quarter of a second to start and most tasks take
        milliseconds, so a task first waits briefly for a busy worker to come
        free; only if none does is another worker started. Long tasks thus get
        parallel workers, and a burst of short ones does not pay for four starts.
        """
        if self._available is None:
            self._available = asyncio.Condition()
        async with self._available:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        return worker
                    self._count -= 1
                can_grow = self._count < self.max_workers and not self._starting
                if self._count == 0 or (can_grow and self._patience_over):
                    self._count += 1
                    self._starting += 1
                    self._patience_over = False
                    break
                timeout = None if self._starting else SPAWN_PATIENCE
                self._waiting += 1
                try:
                    await asyncio.wait_for(self._available.wait(), timeout)
                except TimeoutError:
                    self._patience_over = True
                finally:
                    self._waiting -= 1
        try:
            worker = await self._spawn()
        except BaseException:
            self._starting -= 1
            await self._forget()
            raise
        self._starting -= 1
        async with self._available:
            self._available.notify_all()  # waiters may now start another worker if needed
        return worker

    async def _forget(self) -> None:
        assert self._available is not None
        async with self._available:
            self._count -= 1
            self._available.notify()

    def _retires(self, worker: _Worker) -> bool:
        return not worker.alive or worker.rss > self.rss_limit or worker.tasks >= self.max_tasks

    def _release_at_once(self, worker: _Worker) -> bool:
        """Put a worker that stays back in the pool now, if no task waits for one.

        The usual case (a chain, or fewer ready tasks than workers): nobody is to
        be woken, so the pool's condition need not be taken, which would cost a
        task of its own and a turn of the event loop per East task.
        """
        if self._waiting or self._retires(worker):
            return False
        if self._available is not None and self._available.locked():
            return False
        self._idle.append(worker)
        return True

    async def _release(self, worker: _Worker) -> None:
        if self._retires(worker):
            if worker.alive:
                worker.stop()
            self.guardian.unregister(worker.pid)
            await self._forget()
            return
        assert self._available is not None
        async with self._available:
            self._idle.append(worker)
            self._available.notify()

    # ── running ──────────────────────────────────────────────────────────
    async def run(self, request: RunRequest, on_start: OnStart) -> RunResult:
        """Run one command on a warm worker."""
        try:
            worker = await self._acquire()
        except WorkerDied as exc:
            return RunResult(error=f"warm East worker failed to start ({exc.returncode})")
        # The environment goes to a worker when it differs from the last one it got;
        # per-task variables (E3_TASK, E3_EXECUTION_ID) travel as an update.
        base = {k: v for k, v in request.env.items() if k not in _PER_TASK}
        message: dict[str, Any] = {
            "argv": list(request.argv),
            "cwd": str(request.cwd),
            "env_update": {k: request.env[k] for k in _PER_TASK if k in request.env},
            "stdout": str(request.stdout),
            "stderr": str(request.stderr),
            "inline": request.inline_output,
        }
        if request.files is not None:  # stored objects are compiled once, named by hash
            message["objects"] = {path: h for h, path in request.files.inputs}
        if worker.env != base:
            message["env"] = base
            worker.env = base
        try:
            try:
                worker.send(message)
                on_start(worker.pid)  # bookkeeping while the worker computes
                reply, payload = await asyncio.wait_for(worker.reply(), request.timeout)
            except TimeoutError:
                worker.kill()
                return RunResult(timed_out=True, pid=worker.pid)
            except WorkerDied:
                worker.kill()
                rc = worker.proc.returncode
                if rc is not None and rc < 0:
                    return RunResult(signal=-rc, pid=worker.pid)
                return RunResult(exit_code=rc if rc is not None else 1, pid=worker.pid)
            except asyncio.CancelledError:
                worker.kill()
                raise
        finally:
            worker.tasks += 1
            if not self._release_at_once(worker):
                await asyncio.shield(self._release(worker))
        worker.rss = int(reply.get("rss", 0))
        logs = reply.get("logs")
        form = reply.get("output")
        return RunResult(
            exit_code=int(reply["exit_code"]),
            pid=worker.pid,
            output=payload if form == "inline" else None,
            canonical=form in ("inline", "file"),
            log_sizes=(int(logs[0]), int(logs[1])) if logs else None,
        )

    async def close(self) -> None:
        """Stop every idle worker."""
        for worker in self._idle:
            worker.stop()
            self.guardian.unregister(worker.pid)
        self._idle.clear()
        self._count = 0
