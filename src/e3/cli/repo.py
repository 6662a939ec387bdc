"""``e3 repo create | status | remove | gc``."""

from __future__ import annotations

import argparse
import re
from typing import Any

from e3.cli.context import Context, is_remote
from e3.cli.output import format_size
from e3.cli.registry import add_command
from e3.errors import ConflictError, UsageError

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``60000`` (milliseconds, as the reference), ``90s``, ``5m``, ``2h``, ``1d`` → seconds."""
    m = _DURATION_RE.fullmatch(text.strip())
    if not m:
        raise UsageError(f"invalid duration {text!r}: use e.g. 60000 (ms), 90s, 5m, 2h")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2) or "ms"]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``repo`` command group."""
    p = add_command(sub, "repo")
    rs = p.add_subparsers(dest="repo_command", metavar="<subcommand>", required=True)

    c = rs.add_parser("create", parents=[common], help="create a repository")
    c.add_argument("repo", help="directory (created if missing) or server URL")
    c.set_defaults(handler=cmd_create)

    s = rs.add_parser("status", parents=[common], help="show packages and workspaces")
    s.add_argument("repo")
    s.set_defaults(handler=cmd_status)

    r = rs.add_parser("remove", parents=[common], help="delete a repository")
    r.add_argument("repo")
    r.add_argument(
        "-r",
        "--recursive",
        action="store_true",
        help="also remove its workspaces (required if it has any)",
    )
    r.set_defaults(handler=cmd_remove)

    ls = rs.add_parser("list", parents=[common], help="list the repositories a server serves")
    ls.add_argument("server", help="server URL (http(s)://host[:port])")
    ls.set_defaults(handler=cmd_list)

    v = rs.add_parser(
        "verify", parents=[common], help="check every object, ref and record (read only)"
    )
    v.add_argument("repo")
    v.set_defaults(handler=cmd_verify)

    g = rs.add_parser("gc", parents=[common], help="delete objects nothing refers to")
    g.add_argument("repo")
    g.add_argument("--dry-run", action="store_true", help="report without deleting")
    g.add_argument(
        "--min-age",
        default="60000",
        help="keep objects younger than this (ms, or 90s / 5m / 2h; default 60000)",
    )
    g.set_defaults(handler=cmd_gc)


def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    """Create a repository."""
    if is_remote(args.repo):
        from e3.client.service import create_remote

        name = create_remote(args.repo, ctx.settings)
        ctx.out.line(f"Created repository: {name}")
        ctx.out.line(f"  URL: {args.repo}")
        ctx.out.data({"name": name, "url": args.repo})
        return 0
    from e3.store.repository import create_repository

    repo, created = create_repository(args.repo, durable=ctx.settings.durable)
    ctx.out.line(f"Initialized e3 repository at {repo.root}")
    for d in created:
        ctx.out.line(f"  {d}/")
    ctx.out.data({"path": str(repo.root), "created": created})
    return 0


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    """Print a repository summary."""
    st = ctx.service(args.repo).repo_status()
    ctx.out.data(st)
    ctx.out.line(f"Repository: {st.location}")
    ctx.out.line(f"Objects: {st.object_count}")
    ctx.out.line("Packages:")
    for p in st.packages:
        ctx.out.line(f"  {p.ref}")
    if not st.packages:
        ctx.out.line("  (none)")
    ctx.out.line("Workspaces:")
    for w in st.workspaces:
        if w.deployed:
            ctx.out.line(f"  {w.name}")
            ctx.out.line(f"    Package: {w.package_name}@{w.package_version}")
            ctx.out.line(f"    Deployed: {w.deployed_at.isoformat() if w.deployed_at else '-'}")
        else:
            ctx.out.line(f"  {w.name} (not deployed)")
    if not st.workspaces:
        ctx.out.line("  (none)")
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    """Remove a repository (and, with -r, its workspaces first)."""
    svc = ctx.service(args.repo)
    wss = svc.workspace_list()
    if wss and not args.recursive:
        for w in wss:
            ctx.out.line(f"  {w.name}")
        raise ConflictError(
            f"repository has {len(wss)} workspace(s); use --recursive (-r) to remove them too"
        )
    removed = []
    for w in wss:
        svc.workspace_remove(w.name)
        removed.append(w.name)
        ctx.out.line(f"Removed workspace: {w.name}")
    svc.repo_remove()
    ctx.out.line(f"Removed repository at {svc.location}")
    ctx.out.data({"removed": svc.location, "workspaces": removed})
    return 0


def cmd_gc(ctx: Context, args: argparse.Namespace) -> int:
    """Garbage-collect."""
    min_age = parse_duration(args.min_age)
    res = ctx.service(args.repo).gc(dry_run=args.dry_run, min_age_seconds=min_age)
    ctx.out.data(res)
    if args.dry_run:
        ctx.out.line("Dry run - no files will be deleted")
    ctx.out.line(f"Minimum age: {round(min_age * 1000)}ms")
    ctx.out.line("Garbage collection complete:" if not args.dry_run else "Would collect:")
    ctx.out.line(f"  Objects retained: {res.retained_objects}")
    ctx.out.line(f"  Objects deleted: {res.deleted_objects}")
    ctx.out.line(f"  Partials deleted: {res.deleted_partials}")
    ctx.out.line(f"  Skipped (young): {res.skipped_young}")
    if res.bytes_freed:
        ctx.out.line(f"  Space reclaimed: {format_size(res.bytes_freed)}")
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    """List a server's repositories."""
    if not is_remote(args.server):
        raise UsageError(f"{args.server}: repo list needs a server URL (http(s)://host[:port])")
    from e3.client.service import list_remote

    names = list_remote(args.server, ctx.settings)
    ctx.out.data(names)
    if not names:
        ctx.out.line("No repositories")
        return 0
    ctx.out.line("Repositories:")
    for n in names:
        ctx.out.line(f"  {n}")
    return 0


def cmd_verify(ctx: Context, args: argparse.Namespace) -> int:
    """Check a repository; exit 7 (corrupt) when anything is wrong."""
    from e3.errors import CorruptObject

    rep = ctx.service(args.repo).verify()
    ctx.out.data(rep)
    ctx.out.line(f"Objects:     {rep.objects}")
    ctx.out.line(f"Packages:    {rep.packages}")
    ctx.out.line(f"Workspaces:  {rep.workspaces} ({rep.refs} dataset refs)")
    ctx.out.line(f"Executions:  {rep.executions} ({rep.incomplete_executions} cut off before done)")
    ctx.out.line(f"Run records: {rep.runs}")
    if rep.partial_files:
        ctx.out.line(
            f"Staging files left by interrupted writes: {rep.partial_files} (gc removes them)"
        )
    if not rep.problems:
        ctx.out.line("No problems found")
        return 0
    ctx.out.line(f"Problems ({len(rep.problems)}):")
    for p in rep.problems:
        ctx.out.line(f"  {p}")
    raise CorruptObject(f"{len(rep.problems)} problem(s) found in {args.repo}")
