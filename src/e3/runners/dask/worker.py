"""The worker side: what a Dask worker process runs for one e3 execution.

:func:`run_task` is the Dask task. It checks versions, finds the inputs
(:mod:`e3.runners.dask.objects`), evaluates the command IR with the worker's
paths, and runs the command with e3's own local runners, each worker thread
having its own event loop and registry: East functions on a warm east-py
worker (compiled IR cached by content), shell commands in a process group of
their own in a scratch directory with private copies of their inputs. So a
timeout, the log cap, the environment and killing behave as in a local run;
a guardian kills the task processes if the worker process dies.

:func:`cancel_execution` (sent with ``Client.run``) cancels a running
execution: its process group (or warm East worker) is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from e3.runners.base import RunnerRegistry, RunRequest, RunResult
from e3.runners.dask.objects import ObjectCache
from e3.runners.dask.spec import (
    TASK_VARIABLES,
    InputRef,
    TaskReply,
    TaskSpec,
    VersionMismatch,
    local_versions,
)
from e3.runners.guardian import Guardian


def task_environment(extra: dict[str, str]) -> dict[str, str]:
    """The worker's environment, its Python's bin directory on PATH, and the task's variables."""
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        env["PATH"] = bindir + (os.pathsep + path if path else "")
    env.update({k: v for k, v in extra.items() if k in TASK_VARIABLES})
    return env


def reads_inputs_only(argv: list[str]) -> bool:
    """``east-py run`` only reads its inputs: it may use the verified files themselves."""
    return len(argv) > 1 and os.path.basename(argv[0]) == "east-py" and argv[1] == "run"


@dataclass
class _ThreadRunners:
    """A worker thread's event loop and its registries (one per isolation mode)."""

    loop: asyncio.AbstractEventLoop
    registries: dict[str, RunnerRegistry]


class WorkerState:
    """What one worker process keeps between tasks."""

    def __init__(self, address: str, scratch: Path) -> None:
        self.address = address
        self.scratch = scratch
        self.objects = ObjectCache(scratch / "objects")
        (scratch / "tasks").mkdir(parents=True, exist_ok=True)
        self.guardian = Guardian()
        self._local = threading.local()
        self._lock = threading.Lock()
        self.running: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[RunResult]]] = {}

    def runners(self) -> _ThreadRunners:
        """This thread's loop and registries (made on its first task)."""
        mine: _ThreadRunners | None = getattr(self._local, "runners", None)
        if mine is None:
            mine = _ThreadRunners(asyncio.new_event_loop(), {})
            self._local.runners = mine
        return mine

    def registry(self, isolation: str) -> RunnerRegistry:
        """This thread's local runners for ``isolation`` (one warm East worker)."""
        mine = self.runners()
        reg = mine.registries.get(isolation)
        if reg is None:
            from e3.runners.east_warm import WarmEastRunner
            from e3.runners.process import ProcessRunner

            guard = self.guardian
            reg = RunnerRegistry()
            if isolation != "process":
                reg.register("east-warm", lambda: WarmEastRunner(max_workers=1, guardian=guard))
            reg.register("process", lambda: ProcessRunner(guardian=guard))
            mine.registries[isolation] = reg
        return reg

    def execute(self, spec: TaskSpec, request: RunRequest) -> RunResult:
        """Run one command on this thread's loop (cancellable by :meth:`cancel`)."""
        mine = self.runners()
        runner = self.registry(spec.isolation).choose(request.argv)

        async def go() -> RunResult:
            task = asyncio.ensure_future(runner.run(request, lambda pid: None))
            with self._lock:
                self.running[spec.execution_id] = (mine.loop, task)
            try:
                return await task
            finally:
                with self._lock:
                    self.running.pop(spec.execution_id, None)

        try:
            return mine.loop.run_until_complete(go())
        except asyncio.CancelledError:
            return RunResult(error="cancelled")

    def cancel(self, execution_id: str) -> bool:
        """Cancel a running execution (its processes are killed); whether it was running."""
        with self._lock:
            entry = self.running.get(execution_id)
        if entry is None:
            return False
        loop, task = entry
        loop.call_soon_threadsafe(task.cancel)
        return True


_STATE: WorkerState | None = None
_STATE_LOCK = threading.Lock()


def state() -> WorkerState:
    """This worker process's state (made on the first task)."""
    global _STATE
    with _STATE_LOCK:
        if _STATE is None:
            from distributed import get_worker

            worker = get_worker()
            scratch = Path(worker.local_directory) / f"e3-{os.getpid()}"
            _STATE = WorkerState(str(worker.address), scratch)
        return _STATE


def worker_versions() -> tuple[str, str]:
    """This worker's ``(e3, east-py)`` versions (sent with ``Client.run`` at connection)."""
    return local_versions()


def cancel_execution(execution_id: str) -> bool:
    """Cancel ``execution_id`` if this worker runs it (sent with ``Client.run``)."""
    current = _STATE
    return current.cancel(execution_id) if current is not None else False


def _read_capped(path: Path, limit: int) -> tuple[bytes, int]:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return b"", 0
    with open(path, "rb") as f:
        data = f.read(limit)
    return data, max(0, size - len(data))


def run_task(spec: TaskSpec, *blobs: bytes) -> TaskReply:
    """Execute one e3 execution on this worker (the Dask task)."""
    t0 = time.perf_counter()
    st = state()
    if spec.versions != local_versions():
        raise VersionMismatch(st.address, local_versions(), spec.versions)
    refs: tuple[InputRef, ...] = (spec.command, *spec.inputs)
    paths = st.objects.paths(refs, blobs, spec.repo_root, st.address)
    base = st.scratch / "tasks" / spec.execution_id
    out, log_out, log_err = _files(base)
    try:
        t1 = time.perf_counter()
        result = _run(st, spec, paths, base)
        t2 = time.perf_counter()
        stdout, out_dropped = _read_capped(log_out, spec.log_limit)
        stderr, err_dropped = _read_capped(log_err, spec.log_limit)
        output: bytes | None = None
        is_dir = out.is_dir()
        if result.ok and not is_dir:
            with contextlib.suppress(FileNotFoundError):
                output = out.read_bytes()
        return TaskReply(
            st.address,
            result.exit_code,
            result.signal,
            result.error,
            result.timed_out,
            output,
            is_dir,
            stdout,
            stderr,
            out_dropped,
            err_dropped,
            {"inputs": t1 - t0, "run": t2 - t1, "reply": time.perf_counter() - t2},
        )
    finally:
        st.objects.release(refs)
        if base.exists():
            shutil.rmtree(base, ignore_errors=True)
        for path in (out, log_out, log_err):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(path)
        if out.is_dir():
            shutil.rmtree(out, ignore_errors=True)


def _files(base: Path) -> tuple[Path, Path, Path]:
    """Output and log files of the execution whose working directory is ``base``."""
    name = base.name
    return (
        base.with_name(f"{name}.output.beast2"),
        base.with_name(f"{name}.stdout"),
        base.with_name(f"{name}.stderr"),
    )


def _run(st: WorkerState, spec: TaskSpec, paths: list[str], base: Path) -> RunResult:
    """Evaluate the command with this worker's paths and run it.

    Only a command that may write its inputs gets a working directory of its
    own (``base``, removed by the caller) with private copies of them; an
    ``east-py run`` reads the verified files in place and runs in the shared
    ``tasks`` directory, sparing a directory made and removed per task.
    """
    from e3.codec.ir import evaluate_command
    from e3.errors import E3Error

    ir = Path(paths[0]).read_bytes()
    inputs = paths[1:]
    output, log_out, log_err = _files(base)
    out = str(output)
    cwd = base.parent
    try:
        argv = evaluate_command(ir, inputs, out)
        if not reads_inputs_only(argv):
            # Arbitrary commands get private copies of their inputs, as locally.
            base.mkdir(parents=True, exist_ok=True)
            cwd = base
            copies = [str(base / f"input-{k}.beast2") for k in range(len(inputs))]
            for src, dst in zip(inputs, copies, strict=True):
                shutil.copyfile(src, dst)
            argv = evaluate_command(ir, copies, out)
    except E3Error as exc:
        return RunResult(error=exc.message)
    request = RunRequest(
        argv=tuple(argv),
        cwd=cwd,
        env=task_environment(spec.env),
        stdout=log_out,
        stderr=log_err,
        timeout=spec.timeout,
        label=spec.label,
    )
    return st.execute(spec, request)
