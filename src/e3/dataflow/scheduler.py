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
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from e3 import executions, workspaces
from e3.codec import beast2
from e3.codec import ir as east_ir
from e3.codec.types import print_type
from e3.dataflow.events import Event, EventKind
from e3.dataflow.graph import Graph, build_graph
from e3.dataflow.plan import Counts, Plan, State
from e3.errors import DataflowAborted, DecodeError, E3Error, TypeMismatch
from e3.hashing import inputs_hash
from e3.names import new_uuid7
from e3.paths import DatasetPath, format_keypath
from e3.records import dataflow as run_record
from e3.records import task as task_record
from e3.records import workspace as ws_record
from e3.records._util import utc_now
from e3.records.dataflow import DataflowRun, RunSummary, TaskExecution
from e3.records.dataset_ref import DatasetRef
from e3.records.execution import ExecutionStatus
from e3.repository import Repository
from e3.runners.base import RunnerRegistry, RunRequest, RunResult, default_registry
from e3.store import atomic, locks
from e3.store.procs import current_identity, identity_of

#: Default size cap of each of a task's stdout and stderr logs.
DEFAULT_LOG_LIMIT = 10 << 20
_PERIODIC = 0.5


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


def load_graph(repo: Repository, dep: workspaces.Deployed) -> Graph:
    """The task graph of a deployed package."""
    tasks = {}
    for name, h in dep.package.tasks.items():
        tasks[name] = (h, task_record.decode(repo.objects.get(h)))
    return build_graph(tasks)


def _task_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        env["PATH"] = bindir + (os.pathsep + path if path else "")
    env.update(extra)
    return env


def cap_log(path: Path, limit: int) -> None:
    """Truncate a log to ``limit`` bytes and say so at its end."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size <= limit:
        return
    with open(path, "r+b") as f:
        f.truncate(limit)
        f.seek(limit)
        f.write(
            f"\n[e3: log truncated: {size - limit} more bytes were written "
            f"beyond the {limit}-byte limit]\n".encode()
        )


class _Run:
    """One run's mutable state (kept out of the pure plan)."""

    def __init__(
        self,
        repo: Repository,
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
        self.refs: dict[DatasetPath, DatasetRef] = {}
        self.identity = current_identity()
        self.env_base = _task_env({"E3_WORKSPACE": ws, "E3_RUN_ID": self.run_id})
        self.output_types: dict[DatasetPath, object] = {}

    # ── execution of one task ────────────────────────────────────────────
    async def execute(self, graph: Graph, i: int, input_hashes: tuple[str, ...]) -> _Done:
        node = graph.tasks[i]
        ih = inputs_hash(input_hashes)
        flight = executions.FlightLock(self.repo, node.hash, ih)
        t0 = time.monotonic()
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
            return await self._run_command(graph, i, input_hashes, ih, t0)
        finally:
            flight.release()

    async def _run_command(
        self, graph: Graph, i: int, input_hashes: tuple[str, ...], ih: str, t0: float
    ) -> _Done:
        node = graph.tasks[i]
        repo = self.repo
        eid, edir, started = executions.begin(
            repo,
            node.hash,
            ih,
            input_hashes,
            pid=self.identity.pid,
            pid_start_time=self.identity.start_time,
            boot_id=self.identity.boot_id,
        )
        scratch = repo.tmp_dir / eid
        result: RunResult | None = None

        def finish(
            state: Literal["success", "failed", "error"],
            *,
            message: str | None = None,
            exit_code: int | None = None,
            output: str | None = None,
        ) -> None:
            status = ExecutionStatus(
                state,
                eid,
                input_hashes,
                started,
                utc_now(),
                output_hash=output,
                exit_code=exit_code,
                message=message,
            )
            if state == "success":
                executions.record_success(edir, status)
            else:
                executions.write_status(edir, status)

        try:
            scratch.mkdir(parents=True)
            ir = self.command_cache.get(node.command_ir)
            if ir is None:
                ir = self.command_cache[node.command_ir] = repo.objects.get(node.command_ir)
            out_path = scratch / "output.beast2"
            paths = [str(repo.objects.path_of(h)) for h in input_hashes]
            argv = east_ir.evaluate_command(ir, paths, str(out_path))
            runner = self.registry.choose(argv)
            if runner.name == "process" and not _reads_inputs_only(argv):
                # Arbitrary commands get private copies: they cannot harm stored objects.
                staged = []
                for k, p in enumerate(paths):
                    dest = scratch / f"input-{k}.beast2"
                    shutil.copyfile(p, dest)
                    staged.append(str(dest))
                argv = east_ir.evaluate_command(ir, staged, str(out_path))
            request = RunRequest(
                argv=tuple(argv),
                cwd=scratch,
                env={**self.env_base, "E3_TASK": node.name, "E3_EXECUTION_ID": eid},
                stdout=edir / executions.STDOUT_FILE,
                stderr=edir / executions.STDERR_FILE,
                timeout=self.options.timeout,
                label=node.name,
            )

            def on_start(pid: int) -> None:
                ident = identity_of(pid)
                executions.write_status(
                    edir,
                    ExecutionStatus(
                        "running",
                        eid,
                        input_hashes,
                        started,
                        pid=pid,
                        pid_start_time=ident.start_time if ident else 0,
                        boot_id=ident.boot_id if ident else self.identity.boot_id,
                    ),
                )

            self.emit("task_started", task=node.name, execution_id=eid)
            result = await runner.run(request, on_start)
            duration = time.monotonic() - t0
            if not result.ok:
                if result.exit_code is not None and not result.timed_out and result.error is None:
                    finish("failed", exit_code=result.exit_code)
                    return _Done(
                        i,
                        execution_id=eid,
                        error=result.describe(),
                        exit_code=result.exit_code,
                        duration=duration,
                    )
                message = (
                    f"timed out after {self.options.timeout:g} s"
                    if result.timed_out
                    else result.describe()
                )
                if result.signal is not None and not result.timed_out:
                    finish("failed", exit_code=128 + result.signal, message=message)
                    return _Done(
                        i,
                        execution_id=eid,
                        error=message,
                        exit_code=128 + result.signal,
                        duration=duration,
                    )
                finish("error", message=message)
                return _Done(i, execution_id=eid, error=message, duration=duration)
            try:
                data = out_path.read_bytes()
            except FileNotFoundError:
                message = "the task exited 0 but wrote no output file"
                finish("error", message=message)
                return _Done(i, execution_id=eid, error=message, duration=duration)
            declared = self.output_types[node.output]
            try:
                _, canonical = beast2.canonicalize(data, declared)
            except (DecodeError, TypeMismatch) as exc:
                message = (
                    f"output is not a valid value of {format_keypath(node.output)} "
                    f"({print_type(declared)}): {exc.message}"
                )
                finish("error", message=message)
                return _Done(i, execution_id=eid, error=message, duration=duration)
            h = repo.objects.put(canonical)
            finish("success", output=h)
            return _Done(i, h, eid, duration=duration)
        except asyncio.CancelledError:
            finish("error", message="cancelled")
            raise
        except E3Error as exc:
            finish("error", message=exc.message)
            return _Done(i, execution_id=eid, error=exc.message, duration=time.monotonic() - t0)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            for name in (executions.STDOUT_FILE, executions.STDERR_FILE):
                cap_log(edir / name, self.options.log_limit)


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
    repo: Repository,
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
    repo: Repository,
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

    def settle_output(i: int, h: str) -> None:
        out = graph.tasks[i].output
        cur = current_outputs.get(out)
        if cur is None or cur.kind != "value" or cur.hash != h:
            ref = DatasetRef.of(h)
            # The object is already durable; the ref is synced with the run's last barrier.
            workspaces.write_ref(repo, dep, out, ref, durable=False)
            current_outputs[out] = ref

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
                            settle_output(i, hit[1])
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
                if plan.finished():
                    break
                continue
            done, _ = await asyncio.wait(
                running, timeout=_PERIODIC, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                i = running.pop(task)
                res = task.result()
                node = graph.tasks[i]
                prior = plan.runs[i].launches
                if res.error is None and res.output_hash is not None:
                    accepted = plan.complete(i, res.output_hash, cached=res.cached)
                    if accepted is None:
                        emit(
                            "task_invalidated",
                            task=node.name,
                            detail="an input changed while it ran",
                        )
                        continue
                    settle_output(i, res.output_hash)
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
            check_inputs()
    except (asyncio.CancelledError, KeyboardInterrupt):
        cancelled = True
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        plan.cancel_pending("cancelled")

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
    repo: Repository,
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


def _write_run(repo: Repository, run: DataflowRun) -> None:
    atomic.write_bytes(
        repo.dataflow_run_path(run.workspace, run.run_id), run_record.encode(run), durable=False
    )


def _set_current_run(repo: Repository, ws: str, run_id: str) -> None:
    state = workspaces.read_state(repo, ws)
    if state is None:
        return
    new = ws_record.WorkspaceState(
        state.package_name, state.package_version, state.package_hash, state.deployed_at, run_id
    )
    atomic.write_bytes(repo.workspace_state_path(ws), ws_record.encode(new), durable=False)
