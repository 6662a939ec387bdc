"""The scheduler: runs a workspace's dataflow with the plan, the cache and the runners.

``run_dataflow`` is the imperative shell around :class:`~e3.dataflow.plan.Plan`:

1. lock the workspace (shared) and its dataflow (exclusive), read the package
   and a snapshot of every dataset's ref;
2. repeatedly take ready tasks from the plan; for each, look up the execution
   cache by (task hash, hash of the ordered input hashes); a hit completes the
   task at once, a miss runs it through the runner that accepts its command,
   at most ``concurrency`` at a time;
3. store each output in canonical Beast2, record the execution, point the
   output dataset at it, and tell the plan, which may release downstream tasks;
4. after every completion, notice inputs set meanwhile (``e3 set``) and let the
   plan re-run what depends on them;
5. write the run record and, if everything completed, the workspace's
   ``currentRunId``.

A result identical to the previous one leaves downstream input hashes
unchanged, so downstream tasks hit the cache (early cutoff). The same
(task, inputs) wanted by two runs at once executes once (single-flight).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from e3.base.hashing import inputs_hash
from e3.base.names import new_uuid7
from e3.base.paths import DatasetPath, format_keypath, ref_relpath
from e3.base.procs import current_identity, identity_of
from e3.codec import beast2
from e3.codec import ir as east_ir
from e3.codec.types import NullType, short_type
from e3.core import executions, workspaces
from e3.dataflow.graph import Graph, build_graph
from e3.dataflow.plan import Counts, Plan, State
from e3.dataflow.slots import SlotDir
from e3.errors import DataflowAborted, DecodeError, E3Error, TypeMismatch
from e3.model.events import Event, EventKind
from e3.records import dataflow as run_record
from e3.records import dataset_ref
from e3.records import execution as exec_record
from e3.records import task as task_record
from e3.records import workspace as ws_record
from e3.records._util import utc_now
from e3.records.dataflow import DataflowRun, RunSummary, TaskExecution
from e3.records.dataset_ref import DatasetRef
from e3.records.execution import ExecutionStatus
from e3.runners.base import RunnerRegistry, RunRequest, default_registry
from e3.store import atomic, locks
from e3.store.repository import RepoStore

#: Results are published (cache records, output refs) in batches at most this far apart,
#: each after one file-system sync, instead of one fsync per task.
PUBLISH_INTERVAL = 0.25
#: A task running longer than this gets a ``running`` status and live logs.
SLOW_TASK = 0.2
#: Default size cap of each of a task's stdout and stderr logs.
DEFAULT_LOG_LIMIT = 10 << 20
_PERIODIC = 0.2


@dataclass(frozen=True)
class StartOptions:
    """How to run a dataflow (``e3 start`` flags)."""

    filters: tuple[str, ...] = ()
    concurrency: int = 4
    force: bool = False
    keep_going: bool = False
    timeout: float | None = None
    isolation: str = "warm"
    log_limit: int = DEFAULT_LOG_LIMIT


@dataclass
class RunOutcome:
    """The end of a run."""

    run_id: str
    status: str  # completed | failed | cancelled
    counts: Counts
    duration: float
    failed: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[tuple[str, str]] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)


@dataclass
class _Done:
    """What an execution coroutine reports back to the loop."""

    index: int
    output_hash: str | None = None
    execution_id: str | None = None
    cached: bool = False
    error: str | None = None
    exit_code: int | None = None
    duration: float = 0.0
    publish: Callable[[], None] | None = None


class _Emitter:
    def __init__(self, sink: Callable[[Event], None] | None) -> None:
        self.sink = sink
        self.seq = 0
        self.t0 = time.monotonic()

    def __call__(self, kind: EventKind, **fields: object) -> None:
        if self.sink is None:
            return
        self.seq += 1
        self.sink(Event(kind, self.seq, time.monotonic() - self.t0, **fields))  # type: ignore[arg-type]


_GRAPHS: dict[str, Graph] = {}


def load_graph(repo: RepoStore, dep: workspaces.Deployed) -> Graph:
    """The task graph of a deployed package.

    Packages are immutable, so the graph is cached by package hash: in memory
    (for a server) and in ``cache/graphs/<hash>.json`` (for the next command),
    sparing a thousand-task package a thousand object decodes per run.
    """
    key = dep.state.package_hash
    graph = _GRAPHS.get(key)
    if graph is not None:
        return graph
    cache = repo.root / "cache" / "graphs" / f"{key}.json"
    tasks = _read_graph_cache(cache, dep.package.tasks)
    if tasks is None:
        tasks = {
            name: (h, task_record.decode(repo.objects.get(h)))
            for name, h in dep.package.tasks.items()
        }
        payload = {
            name: [h, t.command_ir, [list(p) for p in t.inputs], list(t.output)]
            for name, (h, t) in tasks.items()
        }
        with contextlib.suppress(E3Error):
            atomic.write_bytes(cache, json.dumps(payload).encode(), durable=False)
    graph = build_graph(tasks)
    if len(_GRAPHS) > 64:
        _GRAPHS.clear()
    _GRAPHS[key] = graph
    return graph


def _read_graph_cache(
    path: Path, expected: dict[str, str]
) -> dict[str, tuple[str, task_record.TaskObject]] | None:
    raw = atomic.read_bytes(path)
    if not raw:
        return None
    try:
        payload = json.loads(raw)
        tasks = {
            name: (h, task_record.TaskObject(ir, tuple(tuple(p) for p in ins), tuple(out)))
            for name, (h, ir, ins, out) in payload.items()
        }
    except (ValueError, TypeError):
        return None
    if {n: h for n, (h, _) in tasks.items()} != expected:
        return None
    return tasks


def _task_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        env["PATH"] = bindir + (os.pathsep + path if path else "")
    env.update(extra)
    return env


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
    logs: _Logs
    pid: int | None = None
    status_written: bool = False


class _Logs:
    """Copies a task's spooled stdout/stderr into its execution directory, capped.

    Runners write into per-slot spool files that are reused from task to task;
    only output that exists is copied, so a quiet task creates no log files.
    Copies happen while a long task runs (so ``e3 logs --follow`` sees it) and
    when it ends; past the cap the rest is counted and a marker says so.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.copied = {executions.STDOUT_FILE: 0, executions.STDERR_FILE: 0}
        self.dropped = {executions.STDOUT_FILE: 0, executions.STDERR_FILE: 0}

    def copy(self, spool: Path, dest: Path, *, final: bool) -> None:
        name = dest.name
        seen = self.copied[name] + self.dropped[name]
        try:
            if os.stat(spool).st_size <= seen:
                data = b""
            else:
                with open(spool, "rb") as f:
                    f.seek(seen)
                    data = f.read()
        except FileNotFoundError:
            data = b""
        room = max(0, self.limit - self.copied[name])
        keep, extra = data[:room], len(data) - min(len(data), room)
        if keep:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "ab") as out:
                out.write(keep)
            self.copied[name] += len(keep)
        self.dropped[name] += extra
        if final and self.dropped[name]:
            with open(dest, "ab") as out:
                out.write(
                    f"\n[e3: log truncated: {self.dropped[name]} more bytes were written "
                    f"beyond the {self.limit}-byte limit]\n".encode()
                )


class _Run:
    """One run's mutable state (kept out of the pure plan)."""

    def __init__(
        self,
        repo: RepoStore,
        ws: str,
        options: StartOptions,
        emit: _Emitter,
        registry: RunnerRegistry,
    ) -> None:
        self.repo = repo
        self.ws = ws
        self.options = options
        self.emit = emit
        self.registry = registry
        self.run_id = new_uuid7()
        self.command_cache: dict[str, bytes] = {}
        self.task_executions: dict[str, TaskExecution] = {}
        self.identity = current_identity()
        self.env_base = _task_env({"E3_WORKSPACE": ws, "E3_RUN_ID": self.run_id})
        self.output_types: dict[DatasetPath, object] = {}
        self.scratch = repo.tmp_dir / f"run-{self.run_id}"
        self.free_slots = list(range(max(1, options.concurrency) - 1, -1, -1))
        self.active: dict[str, _Active] = {}
        self.flights = executions.FlightTable(repo)
        self.slots: dict[int, SlotDir] = {}
        #: Per command IR: whether its last argv needed staged input copies.
        self.stages: dict[str, bool] = {}

    def close(self) -> None:
        """Drop the run's single-flight locks and remove its scratch files."""
        self.flights.close()
        for slot_dir in self.slots.values():
            slot_dir.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    # ── bookkeeping of long tasks ────────────────────────────────────────
    def tick(self, min_age: float = SLOW_TASK) -> None:
        """Record and stream tasks that have run for a while.

        Short tasks never get a ``running`` status or live logs: they are over
        before anyone could look, and skipping those writes halves the file
        creations per task.
        """
        now = time.monotonic()
        for a in self.active.values():
            if now - a.t0 < min_age:
                continue
            if not a.status_written and a.pid is not None:
                self._write_running(a)
            a.logs.copy(a.spool_out, a.edir / executions.STDOUT_FILE, final=False)
            a.logs.copy(a.spool_err, a.edir / executions.STDERR_FILE, final=False)

    def _write_running(self, a: _Active) -> None:
        assert a.pid is not None
        a.edir.mkdir(parents=True, exist_ok=True)
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

    # ── execution of one task ────────────────────────────────────────────
    async def execute(self, graph: Graph, i: int, input_hashes: tuple[str, ...]) -> _Done:
        """Run task ``i`` (or reuse a result someone else just computed).

        A successful result comes back with ``publish`` set: the cache record is
        written (and the single-flight lock released) when the run publishes its
        next batch, after one file-system sync made the output object durable.
        """
        node = graph.tasks[i]
        ih = inputs_hash(input_hashes)
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
                        return _Done(i, hit[1], hit[0], cached=True)
            executions.mark_interrupted(self.repo, node.hash, ih)
            slot = self.free_slots.pop()
            try:
                done = await self._run_command(graph, i, input_hashes, ih, t0, slot)
            finally:
                self.free_slots.append(slot)
            if done.publish is not None:
                record = done.publish
                keep_lock = True

                def publish() -> None:
                    try:
                        record()
                    finally:
                        flight.release()

                done.publish = publish
            return done
        finally:
            if not keep_lock:
                flight.release()

    async def _run_command(
        self, graph: Graph, i: int, input_hashes: tuple[str, ...], ih: str, t0: float, slot: int
    ) -> _Done:
        node = graph.tasks[i]
        repo = self.repo
        # The execution directory is created only when something is written into it
        # (a status, logs): for a quick, quiet success that happens off the critical path,
        # when the result is published.
        eid, edir, started = executions.new_attempt(repo, node.hash, ih)
        slot_dir = self.slots.get(slot)
        if slot_dir is None:
            slot_dir = self.slots[slot] = SlotDir(self.scratch / f"slot-{slot}")
        workdir = slot_dir.path
        out_path = self.scratch / f"out-{slot}.beast2"
        active = _Active(
            node.name,
            edir,
            eid,
            input_hashes,
            started,
            t0,
            self.scratch / f"log-{slot}.out",
            self.scratch / f"log-{slot}.err",
            _Logs(self.options.log_limit),
        )

        def finish(
            state: Literal["failed", "error"],
            *,
            message: str | None = None,
            exit_code: int | None = None,
        ) -> None:
            status = ExecutionStatus(
                state, eid, input_hashes, started, utc_now(), exit_code=exit_code, message=message
            )
            try:
                edir.mkdir(parents=True, exist_ok=True)
                executions.write_status(edir, status)
            except (OSError, E3Error):
                # The disk refuses even this (full, read-only): the attempt stays without a
                # terminal status, which the next run treats as cut short. The run itself
                # still reports the failure.
                pass

        def fail(
            state: Literal["failed", "error"], message: str, exit_code: int | None = None
        ) -> _Done:
            finish(state, message=message, exit_code=exit_code)
            return _Done(
                i,
                execution_id=eid,
                error=message,
                exit_code=exit_code,
                duration=time.monotonic() - t0,
            )

        logs_copied = False

        def copy_logs() -> None:
            """The last log bytes go in before any terminal status (followers stop on it)."""
            nonlocal logs_copied
            if not logs_copied:
                logs_copied = True
                active.logs.copy(active.spool_out, edir / executions.STDOUT_FILE, final=True)
                active.logs.copy(active.spool_err, edir / executions.STDERR_FILE, final=True)

        self.active[eid] = active
        try:
            ir = self.command_cache.get(node.command_ir)
            if ir is None:
                ir = self.command_cache[node.command_ir] = repo.objects.get(node.command_ir)
            paths = [str(repo.objects.path_of(h)) for h in input_hashes]
            staged = slot_dir.input_paths(len(paths))
            # Arbitrary commands get private copies of their inputs (they cannot harm
            # stored objects); commands known to only read them use the stored objects.
            # The command is evaluated once, with the paths it needed last time.
            guess_staged = self.stages.get(node.command_ir, True)
            argv = east_ir.evaluate_command(ir, staged if guess_staged else paths, str(out_path))
            runner = self.registry.choose(argv)
            needs_staging = runner.name == "process" and not _reads_inputs_only(argv)
            if needs_staging != guess_staged:
                argv = east_ir.evaluate_command(
                    ir, staged if needs_staging else paths, str(out_path)
                )
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
                cwd=workdir,
                env={**self.env_base, "E3_TASK": node.name, "E3_EXECUTION_ID": eid},
                stdout=active.spool_out,
                stderr=active.spool_err,
                timeout=self.options.timeout,
                label=node.name,
            )

            def on_start(pid: int) -> None:
                active.pid = pid

            self.emit("task_started", task=node.name, execution_id=eid)
            result = await runner.run(request, on_start)
            copy_logs()
            if not result.ok:
                if result.timed_out:
                    return fail("error", f"timed out after {self.options.timeout:g} s")
                if result.error is not None:
                    return fail("error", result.error)
                if result.signal is not None:
                    return fail("failed", result.describe(), 128 + result.signal)
                return fail("failed", result.describe(), result.exit_code)
            data = atomic.read_bytes(out_path)
            if data is None:
                if out_path.is_dir():
                    return fail(
                        "error", "the task wrote a directory, not a file, at its output path"
                    )
                data = b""
            declared = self.output_types[node.output]
            if not data and declared == NullType:
                # A side-effect-only task (output type Null) need not write anything.
                data = beast2.encode(None, NullType)
            if not data:
                return fail("error", "the task exited 0 but wrote no output file")
            try:
                _, canonical = beast2.canonicalize(data, declared)
            except (DecodeError, TypeMismatch) as exc:
                return fail(
                    "error",
                    f"output is not a valid value of "
                    f"{format_keypath(node.output)} ({short_type(declared)}): "
                    f"{exc.message}",
                )
            h = repo.objects.put(canonical, sync=False)  # synced with the batch it is published in
            status = ExecutionStatus(
                "success", eid, input_hashes, started, utc_now(), output_hash=h
            )
            return _Done(
                i,
                h,
                eid,
                duration=time.monotonic() - t0,
                publish=functools.partial(
                    executions.write_success_files, edir, exec_record.encode(status), h
                ),
            )
        except asyncio.CancelledError:
            copy_logs()
            finish("error", message="cancelled")
            raise
        except E3Error as exc:
            return fail("error", exc.message)
        except OSError as exc:  # staging inputs or reading the output (disk full, I/O error)
            return fail("error", f"storage error: {exc.strerror or exc}")
        finally:
            del self.active[eid]
            with contextlib.suppress(OSError):
                slot_dir.clean()
            with contextlib.suppress(OSError, E3Error):
                copy_logs()


class _Publisher:
    """Writes that refer to new objects (cache records, output refs), batched.

    A batch is one file-system sync (making the batch's objects durable)
    followed by the writes, done on a background thread so the loop keeps
    launching tasks meanwhile (measured: with the writes on the loop instead, a
    1,000-task chain takes 40% longer). Batches run in order.
    """

    def __init__(self, repo: RepoStore) -> None:
        self.repo = repo
        self.pending: list[Callable[[], None]] = []
        self.since = 0.0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._futures: list[concurrent.futures.Future[None]] = []

    def add(self, action: Callable[[], None]) -> None:
        """Queue a write for the next batch."""
        if not self.pending:
            self.since = time.monotonic()
        self.pending.append(action)

    def flush(self) -> None:
        """Start writing the queued batch."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="e3-publish"
            )
        self._futures = [f for f in self._futures if not f.done() or f.exception()]
        self._futures.append(self._executor.submit(self._write, batch))

    def _write(self, batch: list[Callable[[], None]]) -> None:
        try:
            if self.repo.durable:
                atomic.sync_filesystem(self.repo.root)
            for action in batch:
                action()
        except OSError as exc:
            raise atomic.storage_error(exc, "write", self.repo.root) from exc

    async def drain(self) -> None:
        """Write everything queued and wait until it is on disk."""
        self.flush()
        try:
            for f in self._futures:
                await asyncio.wrap_future(f)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            self._futures = []


def _reads_inputs_only(argv: list[str]) -> bool:
    """Commands known to only read their inputs (east-py's runner) may use stored objects."""
    return len(argv) > 1 and os.path.basename(argv[0]) == "east-py" and argv[1] == "run"


def _read_roots(
    dep: workspaces.Deployed, paths: tuple[DatasetPath, ...]
) -> dict[DatasetPath, str | None]:
    out: dict[DatasetPath, str | None] = {}
    for p in paths:
        ref = workspaces.read_ref(dep, p)
        out[p] = ref.hash if ref.kind == "value" else None
    return out


async def run_dataflow(
    repo: RepoStore,
    ws: str,
    options: StartOptions = StartOptions(),
    *,
    on_event: Callable[[Event], None] | None = None,
    registry: RunnerRegistry | None = None,
    cancel: asyncio.Event | None = None,
) -> RunOutcome:
    """Run a workspace's dataflow to completion (see the module docstring).

    Raises:
        LockConflict: another dataflow runs on the workspace, or it is being deployed.
        TaskNotFound: a filter matches no task.
        DataflowAborted: ``cancel`` was set or the coroutine was cancelled; running
            tasks were killed and the run recorded as cancelled.
    """
    emit = _Emitter(on_event)
    structure_lock = workspaces.lock_workspace(repo, ws, "shared", "dataflow")
    try:
        flow_lock = locks.acquire(
            repo.dataflow_lock_path(ws),
            "exclusive",
            operation="dataflow",
            label=f"dataflow of workspace '{ws}'",
        )
    except BaseException:
        structure_lock.release()
        raise
    own_registry = registry is None
    reg = registry or default_registry(isolation=options.isolation, max_workers=options.concurrency)
    try:
        return await _run_locked(repo, ws, options, emit, reg, cancel)
    finally:
        if own_registry:
            await reg.close()
        flow_lock.release()
        structure_lock.release()


async def _run_locked(
    repo: RepoStore,
    ws: str,
    options: StartOptions,
    emit: _Emitter,
    registry: RunnerRegistry,
    cancel: asyncio.Event | None,
) -> RunOutcome:
    dep = workspaces.open_deployed(repo, ws)
    graph = load_graph(repo, dep)
    selected = graph.select(options.filters) if options.filters else None
    from e3.records import structure

    leaves = dict(structure.leaves(dep.package.structure))
    run = _Run(repo, ws, options, emit, registry)
    run.output_types = {node.output: leaves[node.output].type for node in graph.tasks}
    try:
        return await _drive(run, dep, graph, selected, cancel)
    finally:
        run.close()


async def _drive(
    run: _Run,
    dep: workspaces.Deployed,
    graph: Graph,
    selected: set[int] | None,
    cancel: asyncio.Event | None,
) -> RunOutcome:
    """Plan, launch, collect and record one run (its locks and scratch are the caller's)."""
    repo, ws, options, emit = run.repo, run.ws, run.options, run.emit
    roots = _read_roots(dep, graph.roots)
    plan = Plan.create(graph, roots, selected, keep_going=options.keep_going)
    current_outputs = {node.output: workspaces.read_ref(dep, node.output) for node in graph.tasks}
    marker = workspaces.inputs_marker(repo, ws)
    started_at = utc_now()
    t0 = time.monotonic()
    package_ref = f"{dep.state.package_name}@{dep.state.package_version}"
    record = DataflowRun(
        run.run_id,
        ws,
        package_ref,
        started_at,
        "running",
        input_versions={format_keypath(p): h for p, h in roots.items() if h},
    )
    _write_run(repo, record)
    emit("run_started", detail=package_ref, counts={"total": len(plan.runs)})

    running: dict[asyncio.Task[_Done], int] = {}
    skip_reported: set[int] = set()
    publisher = _Publisher(repo)

    def settle_output(i: int, h: str, *, deferred: bool) -> None:
        out = graph.tasks[i].output
        cur = current_outputs.get(out)
        if cur is None or cur.kind != "value" or cur.hash != h:
            ref = DatasetRef.of(h)
            current_outputs[out] = ref
            write = functools.partial(
                atomic.write_bytes,
                dep.data_dir / ref_relpath(out),
                dataset_ref.encode(ref),
                durable=False,
            )
            if deferred:  # refers to an object not yet synced: goes out with its batch
                publisher.add(write)
            else:
                write()

    def report_terminal() -> None:
        for i in plan.drain_settled():
            r = plan.runs[i]
            if i in skip_reported:
                continue
            if r.state is State.SKIPPED:
                skip_reported.add(i)
                emit("task_skipped", task=graph.tasks[i].name, detail=r.reason)
            elif r.state is State.WAITING:
                skip_reported.add(i)
                emit("task_waiting", task=graph.tasks[i].name, detail=r.reason)

    def check_inputs() -> None:
        nonlocal marker
        now = workspaces.inputs_marker(repo, ws)
        if now == marker:
            return
        marker = now
        fresh = _read_roots(dep, graph.roots)
        changes = {p: h for p, h in fresh.items() if plan.values.get(p) != h}
        if not changes:
            return
        for p, h in changes.items():
            emit("input_changed", detail=format_keypath(p), output_hash=h)
        for t in plan.inputs_changed(changes):
            skip_reported.discard(t)
            emit("task_invalidated", task=graph.tasks[t].name, detail="an input changed")

    cancelled = False
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise asyncio.CancelledError
            while len(running) < max(1, options.concurrency):
                i = plan.pop_ready()
                if i is None:
                    break
                launch = plan.launch(i)
                node = graph.tasks[i]
                if not options.force:
                    hit = executions.cached_output(
                        repo, node.hash, inputs_hash(launch.input_hashes)
                    )
                    if hit is not None:
                        if plan.complete(i, hit[1], cached=True) is not None:
                            settle_output(i, hit[1], deferred=False)
                            run.task_executions[node.name] = TaskExecution(hit[0], True)
                            emit(
                                "task_cached",
                                task=node.name,
                                execution_id=hit[0],
                                output_hash=hit[1],
                            )
                        continue
                task = asyncio.ensure_future(run.execute(graph, i, launch.input_hashes))
                running[task] = i
            report_terminal()
            if not running:
                publisher.flush()
                if plan.finished():
                    break
                continue
            wait = _PERIODIC
            if publisher.pending:
                wait = max(0.0, min(wait, publisher.since + PUBLISH_INTERVAL - time.monotonic()))
            done, _ = await asyncio.wait(running, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                i = running.pop(task)
                res = task.result()
                node = graph.tasks[i]
                prior = plan.runs[i].launches
                if res.publish is not None:
                    publisher.add(res.publish)  # the cache record is valid whatever happens below
                if res.error is None and res.output_hash is not None:
                    accepted = plan.complete(i, res.output_hash, cached=res.cached)
                    if accepted is None:
                        emit(
                            "task_invalidated",
                            task=node.name,
                            detail="an input changed while it ran",
                        )
                        continue
                    settle_output(i, res.output_hash, deferred=res.publish is not None)
                    assert res.execution_id is not None
                    run.task_executions[node.name] = TaskExecution(
                        res.execution_id, res.cached, execution_count=prior
                    )
                    emit(
                        "task_cached" if res.cached else "task_completed",
                        task=node.name,
                        duration=res.duration,
                        execution_id=res.execution_id,
                        output_hash=res.output_hash,
                    )
                else:
                    skipped = plan.fail(i, res.error or "failed")
                    if plan.runs[i].state is State.FAILED:
                        emit(
                            "task_failed",
                            task=node.name,
                            duration=res.duration,
                            exit_code=res.exit_code,
                            detail=res.error,
                            execution_id=res.execution_id,
                        )
                    for s in skipped:
                        skip_reported.add(s)
                        emit("task_skipped", task=graph.tasks[s].name, detail=plan.runs[s].reason)
            if publisher.pending and time.monotonic() - publisher.since >= PUBLISH_INTERVAL:
                publisher.flush()
            run.tick()
            check_inputs()
    except (asyncio.CancelledError, KeyboardInterrupt):
        cancelled = True
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        plan.cancel_pending("cancelled")
    await publisher.drain()

    counts = plan.counts()
    duration = time.monotonic() - t0
    failed = [
        (graph.tasks[i].name, r.reason or "failed")
        for i, r in plan.runs.items()
        if r.state is State.FAILED
    ]
    waiting = [
        (graph.tasks[i].name, r.reason or "")
        for i, r in plan.runs.items()
        if r.state in (State.WAITING, State.SKIPPED)
        and r.reason
        and not r.reason.startswith("upstream task")
    ]
    not_started = [
        graph.tasks[i].name
        for i, r in plan.runs.items()
        if r.state in (State.PENDING, State.RUNNING)
    ]
    status: Literal["completed", "failed", "cancelled"] = (
        "cancelled" if cancelled else ("failed" if failed else "completed")
    )
    summary = RunSummary(
        total=counts.total,
        completed=counts.completed,
        cached=counts.cached,
        failed=counts.failed,
        skipped=counts.skipped + counts.waiting,
        reexecuted=counts.reexecuted,
    )
    outputs = {
        format_keypath(graph.tasks[i].output): r.output_hash
        for i, r in plan.runs.items()
        if r.state is State.COMPLETED and r.output_hash
    }
    final = DataflowRun(
        run.run_id,
        ws,
        package_ref,
        started_at,
        status,
        completed_at=utc_now(),
        failed_task=failed[0][0] if failed else None,
        error=failed[0][1] if failed else None,
        input_versions=record.input_versions,
        output_versions=outputs,
        task_executions=run.task_executions,
        summary=summary,
    )
    _write_run(repo, final)
    if status == "completed" and not counts.pending and not counts.waiting and not counts.skipped:
        _set_current_run(repo, ws, run.run_id)
    executions.durability_barrier(repo)
    emit(
        "run_finished",
        outcome=status,
        duration=duration,
        counts={
            "total": counts.total,
            "executed": counts.executed,
            "cached": counts.cached,
            "failed": counts.failed,
            "skipped": counts.skipped,
            "waiting": counts.waiting,
            "not_started": len(not_started),
            "reexecuted": counts.reexecuted,
        },
    )
    outcome = RunOutcome(run.run_id, status, counts, duration, failed, waiting, not_started)
    if cancelled:
        raise DataflowAborted(
            f"dataflow of workspace '{ws}' was cancelled "
            f"({counts.completed} task(s) completed before)",
            outcome=status,
        ) from None
    return outcome


def run_sync(
    repo: RepoStore,
    ws: str,
    options: StartOptions = StartOptions(),
    *,
    on_event: Callable[[Event], None] | None = None,
    handle_signals: bool = False,
) -> RunOutcome:
    """:func:`run_dataflow` from synchronous code.

    With ``handle_signals`` SIGINT and SIGTERM cancel the run cleanly (running
    tasks are killed, the run is recorded as cancelled, :class:`DataflowAborted`
    is raised) instead of interrupting Python wherever it happens to be.
    """

    async def main() -> RunOutcome:
        cancel = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, cancel.set)
                    installed.append(sig)
        try:
            return await run_dataflow(repo, ws, options, on_event=on_event, cancel=cancel)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    return asyncio.run(main())


def _write_run(repo: RepoStore, run: DataflowRun) -> None:
    atomic.write_bytes(
        repo.dataflow_run_path(run.workspace, run.run_id), run_record.encode(run), durable=False
    )


def _set_current_run(repo: RepoStore, ws: str, run_id: str) -> None:
    state = workspaces.read_state(repo, ws)
    if state is None:
        return
    new = ws_record.WorkspaceState(
        state.package_name, state.package_version, state.package_hash, state.deployed_at, run_id
    )
    atomic.write_bytes(repo.workspace_state_path(ws), ws_record.encode(new), durable=False)
