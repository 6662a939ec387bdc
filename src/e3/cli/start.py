"""``e3 start`` (run a workspace's dataflow and show it) and ``e3 cancel``.

The run executes in the background of this process (or on the server); this
command only watches it. So a viewer going away cannot change the dataflow:
Ctrl-C or SIGTERM cancels the run cleanly (its record closed, every finished
result kept), a second one stops waiting; a closed output pipe only stops the
output, and the run goes on to its end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from e3.cli.context import Context
from e3.cli.registry import add_command
from e3.errors import EXIT_INTERRUPTED, ConflictError, E3Error, LockConflict
from e3.model.runs import start_options

#: How long the follower lets a running run's events gather after showing some: short
#: enough not to be seen, long enough that a burst of cached tasks is drawn in a few turns.
COALESCE_SECONDS = 0.02

if TYPE_CHECKING:
    from e3.model.protocol import Repository, Run
    from e3.model.runs import RunOutcome


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``start`` and ``cancel``."""
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
    s.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the tasks on a Dask cluster: tcp://HOST:PORT (a dask scheduler), or local:N "
        "for N worker processes started for the run (default: $E3_CLUSTER, else here)",
    )
    s.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="if another run holds the workspace, retry for up to this long",
    )
    s.set_defaults(handler=cmd_start)

    c = add_command(sub, "cancel", common)
    c.add_argument("repo")
    c.add_argument("workspace")
    c.set_defaults(handler=cmd_cancel)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM interrupts like Ctrl-C (both cancel the run)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding program): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_waiting(
    repo: Repository,
    ws: str,
    args: argparse.Namespace,
    cluster: str | None = None,
    interrupted: list[int] | None = None,
) -> Run:
    """Start the run, retrying for ``--wait`` seconds while another run holds the workspace.

    An interrupt noted while waiting to retry (``interrupted``) ends the waiting.
    """
    deadline = time.monotonic() + max(0.0, args.wait)
    delay = 0.1
    while True:
        if interrupted:
            raise KeyboardInterrupt
        try:
            return repo.start(
                ws,
                filter=args.filter,
                concurrency=args.concurrency,
                force=args.force,
                keep_going=args.keep_going,
                timeout=args.timeout,
                isolation=args.isolation,
                cluster=cluster,
            )
        except LockConflict:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _discard_output() -> None:
    """The reader of stdout went away: send the rest of the output nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[list[int]]:
    """Within the block a first Ctrl-C or SIGTERM is noted (in the list given), not raised.

    Starting a run is one request: interrupted half-way, the run may have been
    accepted (on a server, say) without this command knowing its id, and would go
    on with nobody to cancel it. So the first interrupt waits until the start has
    returned and is then acted on (the run is cancelled); a second one, for a start
    that hangs, interrupts at once.
    """
    noted: list[int] = []

    def note(signum: int, frame: object) -> None:
        if noted:
            raise KeyboardInterrupt
        noted.append(signum)

    try:
        previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread (an embedding program): nothing to install
        yield noted
        return
    try:
        yield noted
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def follow(run: Run, view: Any, *, cancelled: bool = False) -> RunOutcome:
    """Show a run's events until it ends; the first interrupt cancels it, a second stops waiting.

    ``cancelled``: an interrupt came while the run was being started (it is cancelled now).
    """
    offset = 0
    if cancelled:
        run.cancel()
    tick = getattr(view, "TICK", 5.0)
    with terminate_as_interrupt():
        while True:
            try:
                events, running = run.events_since(offset, wait=tick)
                offset += len(events)
                for e in events:
                    view(e)
                if hasattr(view, "tick"):
                    view.tick()
                if not running and not events:
                    return run.wait()
                if events and running:
                    _let_events_gather(run)
            except KeyboardInterrupt:
                if cancelled:
                    raise
                cancelled = True
                run.cancel()
            except BrokenPipeError:
                _discard_output()
                view = _Discard()


def _let_events_gather(run: Run) -> None:
    """Wait up to :data:`COALESCE_SECONDS` before showing more events, less if the run ends.

    Woken per event, this thread and the engine's would pass the interpreter lock
    back and forth a thousand times a second; but a run that ends meanwhile is
    not kept waiting for (three such pauses were a quarter of a cached run).
    Whatever the wait raises (the run's own error) is raised again by ``wait``
    once its last events are shown.
    """
    with contextlib.suppress(E3Error):
        run.wait(COALESCE_SECONDS)


class _Discard:
    """A view that shows nothing (the reader has gone)."""

    def __call__(self, event: object) -> None:
        """Drop the event."""

    def close(self) -> None:
        """Nothing to close."""


def choose_view(ctx: Context) -> Any:
    """JSON lines, a live terminal display, or plain lines."""
    from e3.cli.progress import JsonProgress, LiveProgress, PlainProgress

    out = ctx.out.stdout
    if ctx.out.json_mode:
        return JsonProgress(out)
    if out.isatty() and os.environ.get("TERM") != "dumb":
        return LiveProgress(out)
    return PlainProgress(out)


def cmd_start(ctx: Context, args: argparse.Namespace) -> int:
    """Run the dataflow, showing progress, and summarise."""
    cluster = args.cluster or ctx.settings.cluster
    options = start_options(  # refuse bad flags before opening anything
        filter=args.filter,
        concurrency=args.concurrency,
        timeout=args.timeout,
        isolation=args.isolation,
        cluster=cluster,
    )
    if options.isolation == "warm" and options.cluster is None and ctx.settings.early_worker:
        from e3.api.open import warm_up

        # The first East worker starts while the engine loads (unless the workspace looks
        # up to date and nothing is forced); stopped at the end if unused.
        ctx.on_close(warm_up(args.repo, None if args.force else args.workspace))
    out = ctx.out.stdout
    view = choose_view(ctx)
    repo = ctx.repository(args.repo)
    with interrupts_deferred() as interrupted:
        run = start_waiting(repo, args.workspace, args, cluster, interrupted)
    if not ctx.out.json_mode:
        with contextlib.suppress(BrokenPipeError):
            out.write(f"Starting tasks in workspace: {args.workspace}\n")
            if args.filter:
                out.write(f"Filter: {', '.join(args.filter)}\n")
            out.write(f"Concurrency: {args.concurrency}\n")
            if cluster:
                out.write(f"Cluster: {cluster}\n")
            if args.force:
                out.write("Force: re-executing all tasks\n")
            out.flush()
    outcome = follow(run, view, cancelled=bool(interrupted))
    try:
        view.close()
        if not ctx.out.json_mode:
            print_summary(out, outcome)
        out.flush()
    except BrokenPipeError:
        _discard_output()
    if outcome.status in ("cancelled", "interrupted"):
        return EXIT_INTERRUPTED
    return 0 if outcome.ok else 1


def print_summary(out: Any, outcome: RunOutcome) -> None:
    """The reference's summary, plus each failure's cause (the tail of its stderr)."""
    if outcome.status == "cancelled":
        out.write("Aborted.\n")
        out.write(f"  dataflow cancelled ({outcome.counts.completed} task(s) completed before)\n")
    c = outcome.counts
    out.write("\nSummary:\n")
    out.write(f"  Executed: {c.executed}\n")
    out.write(f"  Cached:   {c.cached}\n")
    out.write(f"  Failed:   {c.failed}\n")
    out.write(f"  Skipped:  {c.skipped + c.waiting}\n")
    out.write(f"  Duration: {round(outcome.duration * 1000)}ms\n")
    if outcome.failed:
        out.write("\nFailed tasks:\n")
        for p in outcome.failed:
            out.write(f"  {p.name}: {p.reason}\n")
            for line in p.stderr_tail.splitlines():
                out.write(f"    | {line}\n")
    if outcome.waiting:
        out.write("\nWaiting for inputs:\n")
        for p in outcome.waiting:
            out.write(f"  {p.name}: {p.reason}\n")
    if outcome.not_started:
        shown = ", ".join(outcome.not_started[:10])
        more = len(outcome.not_started) - 10
        why = (
            "the run was cancelled"
            if outcome.status == "cancelled"
            else "stopped after the failure; --keep-going runs them"
        )
        out.write(f"\nNot started ({why}): {shown}{f' and {more} more' if more > 0 else ''}\n")


def cmd_cancel(ctx: Context, args: argparse.Namespace) -> int:
    """Cancel the workspace's running dataflow and wait until it has stopped."""
    repo = ctx.repository(args.repo)
    from e3.model.protocol import running_run_id

    run_id = running_run_id(repo, args.workspace)
    if run_id is None:
        raise ConflictError(f"no dataflow is running in workspace '{args.workspace}'")
    run = repo.run(run_id)
    run.cancel()
    outcome = run.wait(timeout=60)
    ctx.out.data({"run_id": run.id, "status": outcome.status})
    ctx.out.line(f"Run {run.id} {outcome.status} ({outcome.counts.completed} task(s) completed)")
    return 0
