"""The loop of one run: launch ready tasks, collect what ended, publish, notice new inputs.

:class:`RunLoop` is the imperative shell around the pure
:class:`~e3.dataflow.plan.Plan`: the plan says what may run, the loop runs it
(cache hit or :class:`~e3.dataflow.execute.TaskExecutor`), reports events and
keeps the workspace's output refs and the execution cache up to date.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import replace

from e3.base import atomic, settled
from e3.base.hashing import inputs_hash
from e3.base.paths import DatasetPath, format_keypath
from e3.core import executions, runs, workspaces
from e3.dataflow.execute import Emit, TaskExecutor, TaskOutcome, task_env
from e3.dataflow.graph import TaskNode
from e3.dataflow.plan import Plan, State
from e3.dataflow.prepare import PreparedRun, read_roots
from e3.dataflow.publish import Publisher
from e3.errors import E3Error
from e3.model.runs import Counts, FinalStatus, RunOutcome, TaskProblem
from e3.records import dataset_ref, structure
from e3.records._util import utc_now
from e3.records.dataflow import RunSummary, TaskExecution
from e3.records.dataset_ref import DatasetRef
from e3.runners.base import STOPS_RUN, RunnerRegistry

#: The loop wakes at least this often (log copies, cancel requests, new inputs).
TICK = 0.2


class RunLoop:
    """One run's loop (see the module docstring)."""

    def __init__(
        self,
        prepared: PreparedRun,
        registry: RunnerRegistry,
        emit: Emit,
        flush_events: Callable[[], None],
        cancel: asyncio.Event | None,
    ) -> None:
        p = prepared
        self.p = p
        self.emit = emit
        self.flush_events = flush_events
        self.cancel = cancel
        self.graph = p.graph
        self.plan = Plan.create(p.graph, p.roots, p.selected, keep_going=p.options.keep_going)
        tree = p.dep.package.structure
        self.executor = TaskExecutor(
            p.repo,
            p.repo.tmp_dir / f"run-{p.run_id}",
            p.options,
            registry,
            emit,
            task_env({"E3_WORKSPACE": p.ws, "E3_RUN_ID": p.run_id}),
            {node.output: _spec(tree, node.output).type for node in p.graph.tasks},
        )
        self.publisher = Publisher(p.repo)
        self.outputs = {n.output: workspaces.read_ref(p.dep, n.output) for n in p.graph.tasks}
        #: Where the workspace's last complete run found each task's result: looked at
        #: first, so a task whose inputs are unchanged needs no listing of its attempts.
        self.last_ids = runs.execution_ids_of(p.repo, p.ws, p.dep.state.current_run_id)
        #: Whether this run wrote anything that only the closing sync makes durable: a
        #: task it ran (its objects, records and refs), or a ref it pointed elsewhere.
        self.wrote_unsynced = False
        self.marker = workspaces.inputs_marker(p.repo, p.ws)
        self.running: dict[asyncio.Task[TaskOutcome], int] = {}
        #: Tasks that ended and are not yet collected, and what the loop waits on for one.
        self.ended: list[asyncio.Task[TaskOutcome]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.reported: set[int] = set()
        self.task_executions: dict[str, TaskExecution] = {}
        self.stderr_tails: dict[int, str] = {}
        self.next_cancel_check = 0.0
        #: When the executor's next tick is due (running statuses, live log copies).
        self.next_tick = 0.0

    async def run(self) -> RunOutcome:
        """Run to the end (or until cancelled) and record the result."""
        t0 = time.monotonic()
        self.emit(
            "run_started",
            detail=self.p.record.package_ref,
            counts=Counts(total=len(self.plan.runs)),
        )
        cancelled = False
        stopped: E3Error | None = None  # a runner that cannot go on (its cluster is lost)
        try:
            cancelled = await self._loop()
        except (asyncio.CancelledError, KeyboardInterrupt):
            cancelled = True
        except STOPS_RUN as exc:
            cancelled, stopped = True, exc
        if cancelled:
            for task in self.running:
                task.cancel()
            if self.running:
                await asyncio.gather(*self.running, return_exceptions=True)
            self.plan.cancel_pending("cancelled")
        try:
            await self.publisher.drain()
            outcome = self._finish(cancelled, time.monotonic() - t0, stopped)
        finally:
            self.executor.close()
            self.flush_events()
        if stopped is not None:
            raise stopped  # finished results are published; the next start resumes
        return outcome

    async def _loop(self) -> bool:
        """Turn until the plan is finished; returns whether the run was cancelled."""
        concurrency = max(1, self.p.options.concurrency)
        while True:
            if self._cancel_requested():
                return True
            while len(self.running) < concurrency and self._launch_next():
                pass
            self._report_settled()
            self.flush_events()
            if not self.running:
                self.publisher.flush()
                if self.plan.finished():
                    # Wait for the last batch to be on disk, then look at the inputs once
                    # more: a set that landed during that sync is this run's to pick up.
                    await self.publisher.drain()
                    self._check_inputs()
                    if self.plan.finished():
                        return False
                continue
            now = time.monotonic()
            due = self.publisher.due_in(now)
            wait = max(0.0, self.next_tick - now)
            if due is not None:
                wait = min(wait, due)
            stop: BaseException | None = None
            for task in await self._ended(wait):
                i = self.running.pop(task)
                if isinstance(task.exception(), STOPS_RUN):
                    stop = task.exception()  # after collecting the other tasks that ended
                    continue
                self._collect(i, task.result())
            if stop is not None:
                raise stop
            if self.publisher.due_in(time.monotonic()) == 0.0:
                self.publisher.flush()
            now = time.monotonic()
            if now >= self.next_tick:
                # On the clock, not on every task that ends: with many tasks running,
                # a tick per completion looked at every running task's logs each time.
                self.executor.tick()
                self.next_tick = now + TICK
            self._check_inputs()

    async def _ended(self, timeout: float) -> list[asyncio.Task[TaskOutcome]]:
        """The tasks that ended, waiting up to ``timeout`` for one if none has.

        Each task reports its end through a callback set once at launch, where
        ``asyncio.wait`` would add and remove a callback on every running task at
        each turn: with a thousand tasks sleeping, that was most of the loop's work.
        """
        if not self.ended:
            loop = asyncio.get_running_loop()
            self.waiter = waiter = loop.create_future()
            timer = loop.call_later(timeout, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self.waiter = None
        done, self.ended = self.ended, []
        return done

    def _on_end(self, task: asyncio.Task[TaskOutcome]) -> None:
        self.ended.append(task)
        if self.waiter is not None:
            _resolve(self.waiter)

    def _cancel_requested(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            return True
        now = time.monotonic()
        if now < self.next_cancel_check:
            return False
        self.next_cancel_check = now + TICK / 2
        return runs.cancel_requested(self.p.repo, self.p.ws, self.p.run_id)

    def _launch_next(self) -> bool:
        """Start (or complete from the cache) the next ready task; ``False`` if none."""
        i = self.plan.pop_ready()
        if i is None:
            return False
        launch = self.plan.launch(i)
        node = self.graph.tasks[i]
        ih = inputs_hash(launch.input_hashes)
        attempts: list[str] | None = None  # not looked at (--force)
        if not self.p.options.force:
            hit = self._last_result(node, ih)
            if hit is None:
                attempts = executions.execution_ids(self.p.repo, node.hash, ih)
                hit = executions.newest_intact(self.p.repo, node.hash, ih, attempts)
            if hit is not None:
                if self.plan.complete(i, hit[1], cached=True) is not None:
                    self._settle_output(i, hit[1], deferred=False)
                    self.task_executions[node.name] = TaskExecution(hit[0], True)
                    self.emit(
                        "task_cached", task=node.name, execution_id=hit[0], output_hash=hit[1]
                    )
                return True
        self.wrote_unsynced = True
        task = asyncio.ensure_future(
            self.executor.execute(node, launch.input_hashes, ih=ih, none_before=attempts == [])
        )
        task.add_done_callback(self._on_end)
        self.running[task] = i
        return True

    def _last_result(self, node: TaskNode, ih: str) -> tuple[str, str] | None:
        """The result the last complete run used, if it is for these inputs and still intact.

        Any successful attempt for (task, inputs) whose output is intact is a valid
        result; the workspace keeps the one it had (a task that is not deterministic
        keeps its output), and a missing or damaged one sends the lookup to the
        newest of all the attempts, as without the hint.
        """
        execution_id = self.last_ids.get(node.name)
        if execution_id is None:
            return None
        return executions.newest_intact(self.p.repo, node.hash, ih, [execution_id])

    def _collect(self, i: int, res: TaskOutcome) -> None:
        """Account for a task that ended."""
        node = self.graph.tasks[i]
        prior = self.plan.runs[i].launches
        if res.publish is not None:
            self.publisher.add(res.publish)  # the cache record is valid whatever happens below
        if res.error is None and res.output_hash is not None:
            if self.plan.complete(i, res.output_hash, cached=res.cached) is None:
                self.emit(
                    "task_invalidated", task=node.name, detail="an input changed while it ran"
                )
                return
            self._settle_output(i, res.output_hash, deferred=res.publish is not None)
            assert res.execution_id is not None
            self.task_executions[node.name] = TaskExecution(
                res.execution_id, res.cached, execution_count=prior
            )
            self.emit(
                "task_cached" if res.cached else "task_completed",
                task=node.name,
                duration=res.duration,
                execution_id=res.execution_id,
                output_hash=res.output_hash,
                worker=res.worker,
            )
            return
        skipped = self.plan.fail(i, res.error or "failed")
        if self.plan.runs[i].state is State.FAILED:
            self.stderr_tails[i] = res.stderr_tail
            self.emit(
                "task_failed",
                task=node.name,
                duration=res.duration,
                exit_code=res.exit_code,
                detail=res.error,
                execution_id=res.execution_id,
                stderr=res.stderr_tail or None,
                worker=res.worker,
            )
        for s in skipped:
            self.reported.add(s)
            self.emit(
                "task_skipped", task=self.graph.tasks[s].name, detail=self.plan.runs[s].reason
            )

    def _settle_output(self, i: int, h: str, *, deferred: bool) -> None:
        """Point the task's output dataset at ``h`` (with its batch if ``h`` is not yet synced)."""
        out = self.graph.tasks[i].output
        cur = self.outputs.get(out)
        if cur is not None and cur.kind == "value" and cur.hash == h:
            return
        ref = DatasetRef.of(h)
        self.outputs[out] = ref
        write = functools.partial(_write_ref, workspaces.ref_file(self.p.dep, out), ref)
        self.wrote_unsynced = True
        # A result found in the cache points at a durable object and could be written at
        # once, but not past a queued write of this ref (the task ran earlier in this run,
        # then an input changed back): that one would land last.
        if deferred or self.publisher.busy():
            self.publisher.add(write)  # encoded there too: off the loop
        else:
            write()

    def _report_settled(self) -> None:
        """Events for tasks the plan classified as skipped or waiting."""
        for i in self.plan.drain_settled():
            r = self.plan.runs[i]
            if i in self.reported:
                continue
            if r.state is State.SKIPPED:
                self.reported.add(i)
                self.emit("task_skipped", task=self.graph.tasks[i].name, detail=r.reason)
            elif r.state is State.WAITING:
                self.reported.add(i)
                self.emit("task_waiting", task=self.graph.tasks[i].name, detail=r.reason)

    def _check_inputs(self) -> None:
        """React to inputs set during the run (``e3 set``)."""
        now = workspaces.inputs_marker(self.p.repo, self.p.ws)
        if now == self.marker:
            return
        self.marker = now
        fresh = read_roots(self.p.dep, self.graph.roots)
        changes: dict[DatasetPath, str | None] = {
            p: h for p, h in fresh.items() if self.plan.values.get(p) != h
        }
        for p, h in changes.items():
            self.emit("input_changed", detail=format_keypath(p), output_hash=h)
        for t in self.plan.inputs_changed(changes):
            self.reported.discard(t)
            self.emit("task_invalidated", task=self.graph.tasks[t].name, detail="an input changed")

    def _finish(
        self, cancelled: bool, duration: float, stopped: E3Error | None = None
    ) -> RunOutcome:
        """Write the final record, make the run durable, emit ``run_finished``.

        ``stopped``: why a runner stopped the run; it is recorded as failed, with that error.
        """
        plan, graph = self.plan, self.graph
        counts = plan.counts()
        failed = [
            TaskProblem(graph.tasks[i].name, r.reason or "failed", self.stderr_tails.get(i, ""))
            for i, r in plan.runs.items()
            if r.state is State.FAILED
        ]
        waiting = [
            TaskProblem(graph.tasks[i].name, r.reason or "")
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
        status: FinalStatus = "cancelled" if cancelled else ("failed" if failed else "completed")
        error = failed[0].reason if failed else None
        if stopped is not None:
            status, error = "failed", stopped.message
        final = replace(
            self.p.record,
            status=status,
            completed_at=utc_now(),
            failed_task=failed[0].name if failed else None,
            error=error,
            output_versions={
                format_keypath(graph.tasks[i].output): r.output_hash
                for i, r in plan.runs.items()
                if r.state is State.COMPLETED and r.output_hash
            },
            task_executions=self.task_executions,
            summary=RunSummary(
                total=counts.total,
                completed=counts.completed,
                cached=counts.cached,
                failed=counts.failed,
                skipped=counts.skipped + counts.waiting,
                reexecuted=counts.reexecuted,
            ),
        )
        runs.write_run(self.p.repo, final)
        if status == "completed" and not (counts.pending or counts.waiting or counts.skipped):
            runs.set_current_run(self.p.repo, self.p.ws, self.p.run_id)
            settled.mark(self.p.repo.root, self.p.ws)  # after the state file's rewrite
        if self.wrote_unsynced:  # a fully cached run wrote only synced records: no sync
            executions.durability_barrier(self.p.repo)
        self.emit(
            "run_finished",
            outcome=status,
            duration=duration,
            counts=counts,
            detail=stopped.message if stopped is not None else None,
        )
        return RunOutcome(self.p.run_id, status, counts, duration, failed, waiting, not_started)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _spec(tree: structure.Node, path: DatasetPath) -> structure.DatasetSpec:
    """The dataset a task writes (the package check made sure it is one)."""
    node = structure.find(tree, path)
    assert isinstance(node, structure.DatasetSpec), path
    return node


def _write_ref(file: str, ref: DatasetRef) -> None:
    atomic.write_bytes(file, dataset_ref.encode(ref), durable=False)
