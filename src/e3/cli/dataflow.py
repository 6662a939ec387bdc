"""``e3 start``: run a workspace's dataflow."""

from __future__ import annotations

import argparse
from typing import Any

from e3.cli.context import Context
from e3.cli.registry import add_command
from e3.errors import EXIT_INTERRUPTED, UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``start``."""
    s = add_command(sub, "start", common)
    s.add_argument("repo")
    s.add_argument("workspace")
    s.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="NAME|GLOB",
        help="run only matching tasks and the tasks they need (repeatable)",
    )
    s.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="tasks running at once (default 4)"
    )
    s.add_argument("--force", action="store_true", help="run every task, ignoring the cache")
    s.add_argument(
        "--keep-going",
        action="store_true",
        help="after a failure, still run every task that does not depend on it",
    )
    s.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="kill a task (and everything it started) that runs longer",
    )
    s.add_argument(
        "--isolation",
        choices=["warm", "process"],
        default="warm",
        help="'process' runs every East task in a process of its own "
        "(default: warm east-py workers)",
    )
    s.set_defaults(handler=cmd_start)

    lg = add_command(sub, "logs", common)
    lg.add_argument("repo")
    lg.add_argument("target", metavar="ws[.task]")
    lg.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing output as the task writes it, until it ends",
    )
    lg.add_argument("--stream", choices=["stdout", "stderr", "both"], default="both")
    lg.set_defaults(handler=cmd_logs)

    hist = add_command(sub, "log", common)
    hist.add_argument("repo")
    hist.add_argument("workspace")
    hist.add_argument("-n", "--limit", type=int, default=20, help="newest N runs (default 20)")
    hist.set_defaults(handler=cmd_log)

    r = add_command(sub, "run", common)
    r.add_argument("repo")
    r.add_argument("task", metavar="pkg[@version]/task")
    r.add_argument(
        "inputs",
        nargs="*",
        metavar="input",
        help="input values (.beast2, .east, .json), one per task input; an East "
        "task's function comes from the package",
    )
    r.add_argument(
        "-o", "--output", required=True, help="where to write the output (.beast2, .east or .json)"
    )
    r.add_argument("--force", action="store_true", help="run even if the result is cached")
    r.add_argument("--isolation", choices=["warm", "process"], default="process")
    r.set_defaults(handler=cmd_run)


def cmd_start(ctx: Context, args: argparse.Namespace) -> int:
    """Run the dataflow, showing progress, and summarise."""
    from e3.cli.progress import JsonProgress, LiveProgress, PlainProgress
    from e3.dataflow.scheduler import StartOptions
    from e3.errors import DataflowAborted

    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    options = StartOptions(
        filters=tuple(args.filter),
        concurrency=args.concurrency,
        force=args.force,
        keep_going=args.keep_going,
        timeout=args.timeout,
        isolation=args.isolation,
    )
    out = ctx.out.stdout
    if ctx.out.json_mode:
        view: Any = JsonProgress(out)
    elif out.isatty():
        view = LiveProgress(out)
    else:
        view = PlainProgress(out)
    if not ctx.out.json_mode:
        out.write(f"Starting tasks in workspace: {args.workspace}\n")
        if args.filter:
            out.write(f"Filter: {', '.join(args.filter)}\n")
        out.write(f"Concurrency: {args.concurrency}\n")
        if args.force:
            out.write("Force: re-executing all tasks\n")
        out.flush()
    svc = ctx.service(args.repo)
    try:
        outcome = svc.dataflow_start(
            args.workspace, options, on_event=view, install_signal_handlers=True
        )
    except DataflowAborted as exc:
        view.close()
        if not ctx.out.json_mode:
            out.write("Aborted.\n")
            out.write(f"  {exc.message}\n")
        out.flush()
        return EXIT_INTERRUPTED
    view.close()
    if ctx.out.json_mode:
        return 1 if outcome.failed else 0
    c = outcome.counts
    out.write("\nSummary:\n")
    out.write(f"  Executed: {c.executed}\n")
    out.write(f"  Cached:   {c.cached}\n")
    out.write(f"  Failed:   {c.failed}\n")
    out.write(f"  Skipped:  {c.skipped + c.waiting}\n")
    out.write(f"  Duration: {round(outcome.duration * 1000)}ms\n")
    if outcome.failed:
        out.write("\nFailed tasks:\n")
        for name, reason in outcome.failed:
            out.write(f"  {name}: {reason}\n")
    if outcome.waiting:
        out.write("\nWaiting for inputs:\n")
        for name, reason in outcome.waiting:
            out.write(f"  {name}: {reason}\n")
    if outcome.not_started:
        shown = ", ".join(outcome.not_started[:10])
        more = len(outcome.not_started) - 10
        out.write(
            f"\nNot started (stopped after the failure; --keep-going runs them): "
            f"{shown}{f' and {more} more' if more > 0 else ''}\n"
        )
    out.flush()
    return 1 if outcome.failed else 0


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    """Show a task's logs, or every task's execution summary."""
    from e3.base.paths import parse_workspace_path

    ws, path = parse_workspace_path(args.target)
    svc = ctx.service(args.repo)
    if not path:
        summaries = svc.task_logs(ws)
        ctx.out.data(summaries)
        width = max((len(t.name) for t in summaries), default=0)
        for t in summaries:
            ctx.out.line(f"{t.name.ljust(width)}  [{t.state}] ({t.executions} execution(s))")
        return 0
    if len(path) != 1:
        raise UsageError(f"{args.target}: expected ws.task")
    task = path[0]
    ex = svc.task_execution(ws, task)
    streams = ["stdout", "stderr"] if args.stream == "both" else [args.stream]
    if ctx.out.json_mode:
        data = {
            s: svc.read_log(ws, task, s, 0, 1 << 30, ex.execution_id).data.decode(
                "utf-8", "replace"
            )
            for s in streams
        }
        ctx.out.data({"task": task, "execution_id": ex.execution_id, **data})
        return 0
    ctx.out.line(f"Task: {task}")
    ctx.out.line(f"Execution: {ex.task_hash[:8]}/{ex.inputs_hash[:8]}/{ex.execution_id[:8]}")
    if args.follow:
        return _follow(ctx, svc, ws, task, ex.execution_id, streams)
    empty = True
    for s in streams:
        chunk = svc.read_log(ws, task, s, 0, 1 << 30, ex.execution_id)
        if chunk.data:
            empty = False
            ctx.out.line(f"=== {s.upper()} ===")
            ctx.out.write_bytes(chunk.data if chunk.data.endswith(b"\n") else chunk.data + b"\n")
    if empty:
        ctx.out.line("No log output.")
    return 0


def _follow(
    ctx: Context, svc: Any, ws: str, task: str, execution_id: str, streams: list[str]
) -> int:
    """Print new log bytes as they arrive until the execution has ended."""
    import time

    offsets = dict.fromkeys(streams, 0)
    delay = 0.05
    try:
        while True:
            complete = True
            got = False
            for s in streams:
                chunk = svc.read_log(ws, task, s, offsets[s], 1 << 20, execution_id)
                if chunk.data:
                    got = True
                    offsets[s] += len(chunk.data)
                    ctx.out.write_bytes(chunk.data)
                complete = complete and chunk.complete
            if complete and not got:
                return 0
            if not got:
                time.sleep(delay)  # poll interval while the task is quiet
                delay = min(delay * 1.5, 0.5)
            else:
                delay = 0.05
    except KeyboardInterrupt:
        ctx.out.line("\n[Stopped]")
        return 0


def cmd_log(ctx: Context, args: argparse.Namespace) -> int:
    """List past runs."""
    runs = ctx.service(args.repo).dataflow_runs(args.workspace)[-max(1, args.limit) :]
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


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    """Run one task ad hoc, memoized like any other execution."""
    from pathlib import Path

    from e3.cli.context import require_file

    spec, sep, task = args.task.rpartition("/")
    if not sep or not spec or not task:
        raise UsageError(f"{args.task}: expected <package>[@version]/<task>")
    for p in args.inputs:
        require_file(Path(p))
    svc = ctx.service(args.repo)
    ctx.out.line(f"Running {spec}/{task}")
    res = svc.task_run(
        spec,
        task,
        [Path(p) for p in args.inputs],
        Path(args.output),
        force=args.force,
        isolation=args.isolation,
        on_input=lambda name, h: ctx.out.line(f"  Input: {name} -> {h[:8]}..."),
    )
    ctx.out.data(res)
    if res.error is not None:
        ctx.out.error(f"Task failed: {res.error}")
        return 1
    ctx.out.line(f"{'Cached' if res.cached else 'Done'} ({round(res.duration * 1000)}ms)")
    ctx.out.line(f"Output: {args.output}")
    return 0
