"""``e3 logs`` (a task's output, or every task's; ``--follow`` to watch) and ``e3 log`` (runs)."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from e3.cli.context import Context
from e3.cli.registry import add_command
from e3.errors import UsageError

if TYPE_CHECKING:
    from e3.model.events import Event
    from e3.model.protocol import Repository, Run

#: Longest pause between two looks at a quiet log.
_QUIET_POLL = 0.5


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``logs`` and ``log``."""
    lg = add_command(sub, "logs", common)
    lg.add_argument("repo")
    lg.add_argument("target", metavar="ws[.task]")
    lg.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing output as tasks write it: of the task (waiting for it to start "
        "if a run is going), or of every task of the running dataflow, until it ends",
    )
    lg.add_argument("--stream", choices=["stdout", "stderr", "both"], default="both")
    lg.set_defaults(handler=cmd_logs)

    hist = add_command(sub, "log", common)
    hist.add_argument("repo")
    hist.add_argument("workspace")
    hist.add_argument("-n", "--limit", type=int, default=20, help="newest N runs (default 20)")
    hist.set_defaults(handler=cmd_log)


def _current_run(repo: Repository, ws: str) -> Run | None:
    from e3.model.protocol import running_run_id

    run_id = running_run_id(repo, ws)
    return repo.run(run_id) if run_id is not None else None


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    """Show a task's logs, or every task's execution summary (``--follow``: watch them)."""
    from e3.base.paths import parse_workspace_path

    ws, path = parse_workspace_path(args.target)
    repo = ctx.repository(args.repo)
    streams = ["stdout", "stderr"] if args.stream == "both" else [args.stream]
    if not path:
        if args.follow:
            return _follow_workspace(ctx, repo, ws, streams)
        summaries = repo.task_logs(ws)
        ctx.out.data(summaries)
        width = max((len(t.name) for t in summaries), default=0)
        for t in summaries:
            ctx.out.line(f"{t.name.ljust(width)}  [{t.state}] ({t.executions} execution(s))")
        return 0
    if len(path) != 1:
        raise UsageError(f"{args.target}: expected ws.task")
    task = path[0]
    if args.follow:
        execution_id = _execution_to_follow(ctx, repo, ws, task)
        if execution_id is not None:
            ctx.out.line(f"Task: {task}")
            ctx.out.line(f"Execution: {execution_id}")
            return _follow_task(ctx, repo, ws, task, execution_id, streams, prefix="")
    ex = repo.task_execution(ws, task)
    if ctx.out.json_mode:
        data = {
            s: repo.read_log(ws, task, s, 0, 1 << 30, ex.execution_id).data.decode(
                "utf-8", "replace"
            )
            for s in streams
        }
        where = {"worker": ex.worker} if ex.worker else {}
        ctx.out.data({"task": task, "execution_id": ex.execution_id, **where, **data})
        return 0
    ctx.out.line(f"Task: {task}")
    ctx.out.line(f"Execution: {ex.task_hash[:8]}/{ex.inputs_hash[:8]}/{ex.execution_id[:8]}")
    if ex.worker:
        ctx.out.line(f"Worker: {ex.worker}")
    empty = True
    for s in streams:
        chunk = repo.read_log(ws, task, s, 0, 1 << 30, ex.execution_id)
        if chunk.data:
            empty = False
            ctx.out.line(f"=== {s.upper()} ===")
            ctx.out.write_bytes(chunk.data if chunk.data.endswith(b"\n") else chunk.data + b"\n")
    if empty:
        ctx.out.line("No log output.")
    return 0


def _execution_to_follow(ctx: Context, repo: Repository, ws: str, task: str) -> str | None:
    """The execution of ``task`` that a running dataflow runs (waiting for it to start).

    ``None`` when no dataflow is running, or the running one has already finished
    with the task: then the latest execution is shown as it is.
    """
    run = _current_run(repo, ws)
    if run is None:
        return None
    so_far, _ = run.events_since(0)
    decided, execution_id = _task_state(so_far, task)
    if decided:
        return execution_id
    ctx.out.line(f"Waiting for task {task} in run {run.id}…")
    ctx.out.flush()
    for e in run.events(len(so_far)):
        decided, execution_id = _task_state([e], task)
        if decided:
            return execution_id
    return None


def _task_state(events: list[Event], task: str) -> tuple[bool, str | None]:
    """Whether ``events`` settle which execution of ``task`` to follow (and which)."""
    found: tuple[bool, str | None] = (False, None)
    for e in events:
        if e.task != task:
            continue
        if e.kind == "task_started":
            found = (True, e.execution_id)
        elif e.kind in ("task_cached", "task_skipped") or (
            e.kind in ("task_completed", "task_failed") and not found[0]
        ):
            found = (True, None)
    return found


def _follow_task(
    ctx: Context,
    repo: Repository,
    ws: str,
    task: str,
    execution_id: str,
    streams: list[str],
    *,
    prefix: str,
) -> int:
    """Print a running execution's new log bytes until it has ended."""
    offsets = dict.fromkeys(streams, 0)
    delay = 0.05
    try:
        while True:
            complete, got = _pump(ctx, repo, ws, task, execution_id, offsets, prefix)
            if complete and not got:
                return 0
            if not got:
                time.sleep(delay)  # poll interval while the task is quiet
                delay = min(delay * 1.5, _QUIET_POLL)
            else:
                delay = 0.05
    except KeyboardInterrupt:
        ctx.out.line("\n[Stopped]")
        return 0


def _pump(
    ctx: Context,
    repo: Repository,
    ws: str,
    task: str,
    execution_id: str,
    offsets: dict[str, int],
    prefix: str,
) -> tuple[bool, bool]:
    """Print what each stream gained; returns (all streams complete, anything printed)."""
    complete = True
    got = False
    for s in offsets:
        chunk = repo.read_log(ws, task, s, offsets[s], 1 << 20, execution_id)
        if chunk.data:
            got = True
            offsets[s] += len(chunk.data)
            if prefix:
                lines = chunk.data.decode("utf-8", "replace").splitlines()
                ctx.out.write_bytes("".join(f"{prefix}{ln}\n" for ln in lines).encode())
            else:
                ctx.out.write_bytes(chunk.data)
        complete = complete and chunk.complete
    return complete, got


def _follow_workspace(ctx: Context, repo: Repository, ws: str, streams: list[str]) -> int:
    """Every running task's output, each line prefixed with its task, until the run ends."""
    run = _current_run(repo, ws)
    if run is None:
        ctx.out.line(f"No dataflow is running in workspace '{ws}'.")
        return 0
    ctx.out.line(f"Following run {run.id} of workspace '{ws}'")
    ctx.out.flush()
    active: dict[str, tuple[str, dict[str, int]]] = {}
    ended: set[str] = set()
    offset = 0
    try:
        while True:
            events, running = run.events_since(offset, wait=0.2)
            offset += len(events)
            for e in events:
                if e.kind == "task_started" and e.task and e.execution_id:
                    active[e.task] = (e.execution_id, dict.fromkeys(streams, 0))
                    ended.discard(e.task)
                elif e.kind in ("task_completed", "task_failed", "task_invalidated") and e.task:
                    ended.add(e.task)
            for task, (eid, offsets) in list(active.items()):
                done, _ = _pump(ctx, repo, ws, task, eid, offsets, f"[{task}] ")
                if task in ended and done:
                    del active[task]
            if not running and not events and not active:
                return 0
    except KeyboardInterrupt:
        ctx.out.line("\n[Stopped]")
        return 0


def cmd_log(ctx: Context, args: argparse.Namespace) -> int:
    """List past runs (a run whose engine died shows as interrupted)."""
    # The table shows no per-task detail; --json gives whole records, as before.
    runs = ctx.repository(args.repo).runs(
        args.workspace, last=max(1, args.limit), brief=not ctx.out.json_mode
    )
    ctx.out.data(runs)
    if not runs:
        ctx.out.line(f"No dataflow runs in workspace '{args.workspace}'")
        return 0
    rows = []
    for r in reversed(runs):
        took = f"{(r.completed_at - r.started_at).total_seconds():.2f}s" if r.completed_at else "-"
        s = r.summary
        outcome = r.status + (f" ({r.failed_task})" if r.failed_task else "")
        rows.append(
            [
                r.run_id[:13],
                r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.package_ref,
                outcome,
                f"{s.completed - s.cached}/{s.cached}/{s.failed}/{s.skipped}",
                took,
            ]
        )
    ctx.out.table(
        ["RUN", "STARTED (UTC)", "PACKAGE", "OUTCOME", "RAN/CACHED/FAILED/SKIPPED", "DURATION"],
        rows,
    )
    return 0
