"""Executing one task: single-flight, the runner, logs, and a canonical, stored output.

:class:`TaskExecutor` holds what a run needs to execute its tasks: the runner
registry, scratch slots (one per concurrent task), the single-flight table and
the command cache. :meth:`TaskExecutor.execute` returns a :class:`TaskOutcome`;
a success carries a ``publish`` action (its cache record) that the run queues
for its next batch (see :mod:`e3.dataflow.publish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from e3.base import atomic
from e3.base.hashing import inputs_hash
from e3.base.paths import DatasetPath, format_keypath
from e3.base.procs import current_identity, identity_of
from e3.codec import beast2
from e3.codec import ir as east_ir
from e3.codec.types import NullType, short_type
from e3.core import executions, flights
from e3.dataflow.canonical import TrustedHeaders
from e3.dataflow.graph import TaskNode
from e3.dataflow.logcopy import LogCopier
from e3.dataflow.slots import SlotDir
from e3.errors import DecodeError, E3Error, TypeMismatch
from e3.model.runs import StartOptions
from e3.records._util import utc_now
from e3.records.execution import ExecutionStatus
from e3.runners.base import STOPS_RUN, RunnerRegistry, RunRequest, RunResult, TaskFiles
from e3.store.repository import RepoStore

#: A task running longer than this gets a ``running`` status and live logs.
SLOW_TASK = 0.2
#: Outputs up to this size may come back in a runner's reply instead of a file.
INLINE_OUTPUT = 1 << 20
#: How much of a failed task's stderr its summary shows.
STDERR_TAIL_LINES = 10
STDERR_TAIL_BYTES = 2000

#: ``emit(kind, **fields)``: report an event of the run.
Emit = Callable[..., None]


@dataclass
class TaskOutcome:
    """What executing one task produced."""

    output_hash: str | None = None
    execution_id: str | None = None
    cached: bool = False
    error: str | None = None
    exit_code: int | None = None
    duration: float = 0.0
    stderr_tail: str = ""
    publish: Callable[[], None] | None = None
    #: The cluster worker it ran on (``None``: this machine).
    worker: str | None = None


@dataclass
class _Active:
    """A task being executed: what the periodic tick needs to record and stream it."""

    name: str
    edir: Path
    eid: str
    input_hashes: tuple[str, ...]
    started: datetime
    t0: float
    spool_out: Path
    spool_err: Path
    logs: LogCopier
    pid: int | None = None
    worker: str | None = None
    status_written: bool = False
    copied: bool = field(default=False)

    def copy_logs(self, sizes: tuple[int, int] | None = None) -> None:
        """Copy the logs' last bytes, once, before any terminal status is written.

        (While the task runs, the log copier's own polling copies the rest.)
        ``sizes``: the spool files' sizes, when the runner reported them (then
        files known to hold nothing new are not even looked at).
        """
        if self.copied:
            return
        self.copied = True
        self.logs.copy(final=True, sizes=sizes)


def task_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment tasks run in: e3's own, with this Python's bin directory on PATH."""
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        env["PATH"] = bindir + (os.pathsep + path if path else "")
    env.update(extra)
    return env


def reads_inputs_only(argv: list[str]) -> bool:
    """Commands known to only read their inputs (east-py's runner) may use stored objects."""
    return len(argv) > 1 and os.path.basename(argv[0]) == "east-py" and argv[1] == "run"


def stderr_tail(path: Path) -> str:
    """The last lines of a log file, for failure summaries."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - STDERR_TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").rstrip().splitlines()
    return "\n".join(lines[-STDERR_TAIL_LINES:])


class TaskExecutor:
    """Executes one run's tasks (see the module docstring)."""

    def __init__(
        self,
        repo: RepoStore,
        scratch: Path,
        options: StartOptions,
        registry: RunnerRegistry,
        emit: Emit,
        env: dict[str, str],
        output_types: dict[DatasetPath, object],
    ) -> None:
        self.repo = repo
        self.scratch = scratch
        self.options = options
        self.registry = registry
        self.emit = emit
        self.env = env
        self.output_types = output_types
        self.identity = current_identity()
        self.command_cache: dict[str, bytes] = {}
        self.free_slots = list(range(max(1, options.concurrency) - 1, -1, -1))
        self.active: dict[str, _Active] = {}
        #: When the tick next looks at each running task: (time, tie-break, execution id).
        self._looks: list[tuple[float, int, str]] = []
        self._look_order = itertools.count()
        self.flights = flights.FlightTable(repo)
        self.slots: dict[int, SlotDir] = {}
        #: Each slot's output and log spool files (paths built once).
        self.slot_files: dict[int, tuple[Path, Path, Path]] = {}
        #: Per command IR: whether its last argv needed staged input copies.
        self.stages: dict[str, bool] = {}
        self.headers = TrustedHeaders()

    def close(self) -> None:
        """Drop the run's single-flight locks and remove its scratch files."""
        self.flights.close()
        for slot_dir in self.slots.values():
            slot_dir.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def tick(self) -> None:
        """Record and stream tasks that have run for a while.

        Short tasks never get a ``running`` status or live logs: they are over
        before anyone could look, and skipping those writes halves the file
        creations per task. Each running task is looked at when its look is
        due (a heap ordered by time), so a tick costs the looks that are due:
        with a thousand tasks sleeping, a pass over all of them five times a
        second was a third of what the idle engine did.
        """
        now = time.monotonic()
        looks, running = self._looks, len(self.active)
        while looks and looks[0][0] <= now:
            eid = heapq.heappop(looks)[2]
            a = self.active.get(eid)
            if a is None or a.copied:
                continue  # it ended: its logs had their final copy
            if not a.status_written and a.pid is not None:
                self._write_running(a)
            a.logs.poll(now, running)
            due = a.logs.next_look if a.status_written else now + SLOW_TASK
            heapq.heappush(looks, (due, next(self._look_order), eid))

    def _write_running(self, a: _Active) -> None:
        assert a.pid is not None
        executions.make_attempt_dir(str(a.edir))
        ident = identity_of(a.pid)
        executions.write_status(
            a.edir,
            ExecutionStatus(
                "running",
                a.eid,
                a.input_hashes,
                a.started,
                pid=a.pid,
                pid_start_time=ident.start_time if ident else 0,
                boot_id=ident.boot_id if ident else self.identity.boot_id,
            ),
        )
        a.status_written = True

    async def execute(
        self,
        node: TaskNode,
        input_hashes: tuple[str, ...],
        *,
        ih: str | None = None,
        none_before: bool = False,
    ) -> TaskOutcome:
        """Run ``node`` on ``input_hashes`` (or reuse a result someone else just computed).

        A successful result comes back with ``publish`` set: the cache record is
        written (and the single-flight lock released) when the run publishes its
        next batch, after one file-system sync made the output object durable.
        ``ih``: the inputs hash, if the caller has it; ``none_before``: the caller
        found no attempt at these inputs, so unless someone else is computing
        them there is no attempt cut short to mark (a first run's tasks skip a
        second listing).
        """
        ih = ih or inputs_hash(input_hashes)
        flight = self.flights.lock(node.hash, ih)
        t0 = time.monotonic()
        keep_lock = False
        try:
            if not flight.try_acquire():
                # Someone else is computing exactly this: wait, then reuse their result.
                delay = 0.002
                while not flight.try_acquire():
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.1)
                if not self.options.force:
                    hit = executions.cached_output(self.repo, node.hash, ih)
                    if hit is not None:
                        return TaskOutcome(hit[1], hit[0], cached=True)
                none_before = False
            if not none_before:
                executions.mark_interrupted(self.repo, node.hash, ih)
            slot = self.free_slots.pop()
            try:
                done = await self._run_command(node, input_hashes, ih, t0, slot)
            finally:
                self.free_slots.append(slot)
            if done.publish is not None:
                done.publish = _then_release(done.publish, flight.release)
                keep_lock = True
            return done
        finally:
            if not keep_lock:
                flight.release()

    async def _run_command(
        self, node: TaskNode, input_hashes: tuple[str, ...], ih: str, t0: float, slot: int
    ) -> TaskOutcome:
        # The execution directory is created only when something is written into it
        # (a status, logs): for a quick, quiet success that happens off the critical path,
        # when the result is published.
        eid, edir, started = executions.new_attempt(self.repo, node.hash, ih)
        slot_dir = self.slots.get(slot)
        if slot_dir is None:
            slot_dir = self.slots[slot] = SlotDir(self.scratch / f"slot-{slot}")
            self.slot_files[slot] = (
                self.scratch / f"out-{slot}.beast2",
                self.scratch / f"log-{slot}.out",
                self.scratch / f"log-{slot}.err",
            )
        out_path, spool_out, spool_err = self.slot_files[slot]
        active = _Active(
            node.name,
            edir,
            eid,
            input_hashes,
            started,
            t0,
            spool_out,
            spool_err,
            LogCopier(self.options.log_limit, spool_out, spool_err, edir),
        )
        attempt = _Attempt(active, time.monotonic)
        self.active[eid] = active
        heapq.heappush(self._looks, (t0 + SLOW_TASK, next(self._look_order), eid))
        try:
            result = await self._launch(node, input_hashes, slot_dir, out_path, active)
            active.worker = result.worker
            active.copy_logs(result.log_sizes)
            if not result.ok:
                if result.timed_out:
                    return attempt.fail("error", f"timed out after {self.options.timeout:g} s")
                if result.error is not None:
                    return attempt.fail("error", result.error)
                code = 128 + result.signal if result.signal is not None else result.exit_code
                return attempt.fail("failed", result.describe(), code)
            return self._store_output(node, out_path, attempt, result)
        except asyncio.CancelledError:
            active.copy_logs()
            attempt.finish("error", message="cancelled")
            raise
        except STOPS_RUN as exc:  # the runner cannot go on (its cluster is lost): the run stops
            attempt.finish("error", message=exc.message)
            raise
        except E3Error as exc:
            return attempt.fail("error", exc.message)
        except OSError as exc:  # staging inputs or reading the output (disk full, I/O error)
            return attempt.fail("error", f"storage error: {exc.strerror or exc}")
        finally:
            del self.active[eid]
            with contextlib.suppress(OSError):
                slot_dir.clean()
            with contextlib.suppress(OSError, E3Error):
                active.copy_logs()

    async def _launch(
        self,
        node: TaskNode,
        input_hashes: tuple[str, ...],
        slot_dir: SlotDir,
        out_path: Path,
        active: _Active,
    ) -> RunResult:
        """Evaluate the task's command, stage its inputs and run it through a runner."""
        ir = self.command_cache.get(node.command_ir)
        if ir is None:
            ir = self.command_cache[node.command_ir] = self.repo.objects.get(node.command_ir)
        paths = [self.repo.objects.file_of(h) for h in input_hashes]
        staged = slot_dir.input_paths(len(paths))
        # Arbitrary commands get private copies of their inputs (they cannot harm
        # stored objects); commands known to only read them use the stored objects.
        # The command is evaluated once, with the paths it needed last time.
        guess_staged = self.stages.get(node.command_ir, True)
        argv = east_ir.evaluate_command(ir, staged if guess_staged else paths, str(out_path))
        runner = self.registry.choose(argv)
        needs_staging = runner.name == "process" and not reads_inputs_only(argv)
        if needs_staging != guess_staged:
            argv = east_ir.evaluate_command(ir, staged if needs_staging else paths, str(out_path))
            runner = self.registry.choose(argv)
            self.stages[node.command_ir] = needs_staging
        slot_dir.stage(paths if needs_staging else [])
        # No output file until the task writes one; the last task's was unlinked
        # (truncating it instead costs an early write-back of its data on ext4).
        try:
            os.unlink(out_path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # the last task made a directory there
            shutil.rmtree(out_path)
        request = RunRequest(
            argv=tuple(argv),
            cwd=slot_dir.path,
            env={**self.env, "E3_TASK": node.name, "E3_EXECUTION_ID": active.eid},
            stdout=active.spool_out,
            stderr=active.spool_err,
            timeout=self.options.timeout,
            label=node.name,
            files=TaskFiles(
                node.command_ir,
                ir,
                tuple(zip(input_hashes, paths, strict=True)),
                out_path,
                str(self.repo.root),
                self.options.log_limit,
            ),
            inline_output=INLINE_OUTPUT,
        )

        def on_start(pid: int) -> None:
            active.pid = pid

        self.emit("task_started", task=node.name, execution_id=active.eid)
        return await runner.run(request, on_start)

    def _store_output(
        self, node: TaskNode, out_path: Path, attempt: _Attempt, result: RunResult
    ) -> TaskOutcome:
        """Check the output against its declared type, store it canonically, and succeed."""
        data = result.output
        if data is None:
            data = atomic.read_bytes(out_path)
        if data is None:
            if out_path.is_dir():
                return attempt.fail(
                    "error", "the task wrote a directory, not a file, at its output path"
                )
            data = b""
        declared = self.output_types[node.output]
        if not data and declared == NullType:
            # A side-effect-only task (output type Null) need not write anything.
            data = beast2.encode(None, NullType)
        if not data:
            return attempt.fail("error", "the task exited 0 but wrote no output file")
        canonical = self.headers.check(node.output, declared, data) if result.canonical else None
        if canonical is None:
            try:
                _, canonical = beast2.canonicalize(data, declared)
            except (DecodeError, TypeMismatch) as exc:
                return attempt.fail(
                    "error",
                    f"output is not a valid value of "
                    f"{format_keypath(node.output)} ({short_type(declared)}): {exc.message}",
                )
            if result.canonical and canonical == data:
                self.headers.confirm(node.output, declared, data)
        h = self.repo.objects.put(canonical, sync=False)  # synced with its publication batch
        a = attempt.active
        status = ExecutionStatus(
            "success", a.eid, a.input_hashes, a.started, utc_now(), output_hash=h, worker=a.worker
        )
        return TaskOutcome(
            h,
            a.eid,
            duration=attempt.elapsed(),
            worker=a.worker,
            # Encoded when published, on the publishing thread: off the loop, whose
            # time is every task's latency in a chain.
            publish=functools.partial(executions.write_success, a.edir, status),
        )


class _Attempt:
    """Ends one attempt: its terminal status (best effort) and the outcome to report."""

    def __init__(self, active: _Active, clock: Callable[[], float]) -> None:
        self.active = active
        self.clock = clock

    def elapsed(self) -> float:
        return self.clock() - self.active.t0

    def finish(
        self,
        state: Literal["failed", "error"],
        *,
        message: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        a = self.active
        status = ExecutionStatus(
            state,
            a.eid,
            a.input_hashes,
            a.started,
            utc_now(),
            exit_code=exit_code,
            message=message,
            worker=a.worker,
        )
        try:
            executions.make_attempt_dir(str(a.edir))
            executions.write_status(a.edir, status)
        except (OSError, E3Error):
            # The disk refuses even this (full, read-only): the attempt stays without a
            # terminal status, which the next run treats as cut short. The run itself
            # still reports the failure.
            pass

    def fail(
        self, state: Literal["failed", "error"], message: str, exit_code: int | None = None
    ) -> TaskOutcome:
        self.finish(state, message=message, exit_code=exit_code)
        return TaskOutcome(
            execution_id=self.active.eid,
            error=message,
            exit_code=exit_code,
            duration=self.elapsed(),
            stderr_tail=stderr_tail(self.active.spool_err),
            worker=self.active.worker,
        )


def _then_release(action: Callable[[], None], release: Callable[[], None]) -> Callable[[], None]:
    def publish() -> None:
        try:
            action()
        finally:
            release()

    return publish
