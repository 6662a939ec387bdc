"""``e3 run``: one task of a package on input files, memoized like any other execution."""

from __future__ import annotations

import argparse
from typing import Any

from e3.cli.context import Context
from e3.cli.registry import add_command
from e3.errors import UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``run``."""
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


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    """Run one task ad hoc, memoized like any other execution."""
    from pathlib import Path

    from e3.cli.context import require_file

    spec, sep, task = args.task.rpartition("/")
    if not sep or not spec or not task:
        raise UsageError(f"{args.task}: expected <package>[@version]/<task>")
    for p in args.inputs:
        require_file(Path(p))
    svc = ctx.repository(args.repo)
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
