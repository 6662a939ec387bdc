"""``e3 repo create | status | remove | gc``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from e3.api.open import is_remote
from e3.base.units import parse_duration, parse_size
from e3.cli.context import Context
from e3.cli.output import format_size
from e3.cli.registry import add_command
from e3.errors import ConflictError, UsageError

if TYPE_CHECKING:
    from e3.model.retention import GcPolicy


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
    v.add_argument(
        "--repair",
        action="store_true",
        help="recompute damaged task results; say what cannot be recomputed",
    )
    v.set_defaults(handler=cmd_verify)

    g = rs.add_parser(
        "gc",
        parents=[common],
        help="delete objects nothing refers to, and old history by the given limits",
    )
    g.add_argument("repo")
    g.add_argument("--dry-run", action="store_true", help="report what would go, delete nothing")
    g.add_argument(
        "--min-age",
        default="60000",
        help="keep objects younger than this (ms, or 90s / 5m / 2h; default 60000)",
    )
    g.add_argument(
        "--keep-runs",
        type=int,
        metavar="N",
        help="keep the newest N run records (and their logs) per workspace",
    )
    g.add_argument(
        "--older-than",
        metavar="DURATION",
        help="remove run records older than this (e.g. 30d); each workspace keeps its newest",
    )
    g.add_argument(
        "--keep-executions",
        type=int,
        metavar="N",
        help="keep the newest N executions of each task and inputs (older ones and their logs go)",
    )
    g.add_argument(
        "--max-size",
        metavar="SIZE",
        help="evict cached results nothing else refers to, least recently used first, "
        "until the object store holds at most SIZE (e.g. 2G)",
    )
    g.set_defaults(handler=cmd_gc)


def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    """Create a repository."""
    from e3.api.open import create

    where, created = create(args.repo, settings=ctx.settings)
    if is_remote(args.repo):
        ctx.out.line(f"Created repository: {where}")
        ctx.out.line(f"  URL: {args.repo}")
        ctx.out.data({"name": where, "url": args.repo})
        return 0
    ctx.out.line(f"Initialized e3 repository at {where}")
    for d in created:
        ctx.out.line(f"  {d}/")
    ctx.out.data({"path": where, "created": created})
    return 0


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    """Print a repository summary."""
    st = ctx.repository(args.repo).repo_status()
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
    """Remove a repository (with -r, also when it has workspaces)."""
    repo = ctx.repository(args.repo)
    wss = repo.workspace_list()
    if wss and not args.recursive:
        for w in wss:
            ctx.out.line(f"  {w.name}")
        raise ConflictError(
            f"repository has {len(wss)} workspace(s); use --recursive (-r) to remove them too"
        )
    repo.repo_remove()
    for w in wss:
        ctx.out.line(f"Removed workspace: {w.name}")
    ctx.out.line(f"Removed repository at {repo.location}")
    ctx.out.data({"removed": repo.location, "workspaces": [w.name for w in wss]})
    return 0


def gc_policy(args: argparse.Namespace) -> GcPolicy:
    """The retention policy the ``gc`` flags describe."""
    from e3.model.retention import GcPolicy

    for flag in ("keep_runs", "keep_executions"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    return GcPolicy(
        dry_run=args.dry_run,
        min_age_seconds=parse_duration(args.min_age),
        keep_runs=args.keep_runs,
        older_than_seconds=None
        if args.older_than is None
        else parse_duration(args.older_than, bare="s"),
        keep_executions=args.keep_executions,
        max_size=None if args.max_size is None else parse_size(args.max_size),
    )


def cmd_gc(ctx: Context, args: argparse.Namespace) -> int:
    """Garbage-collect (and apply retention limits)."""
    policy = gc_policy(args)
    res = ctx.repository(args.repo).gc(policy)
    ctx.out.data(res)
    if args.dry_run:
        ctx.out.line("Dry run - no files will be deleted")
    ctx.out.line(f"Minimum age: {round(policy.min_age_seconds * 1000)}ms")
    ctx.out.line("Garbage collection complete:" if not args.dry_run else "Would collect:")
    for line in res.removed:
        ctx.out.line(f"  {'would remove' if args.dry_run else 'removed'} {line}")
    if res.removed_runs or policy.keep_runs is not None or policy.older_than_seconds is not None:
        ctx.out.line(f"  Run records removed: {res.removed_runs}")
    if res.removed_executions or policy.keep_executions is not None:
        ctx.out.line(f"  Executions removed: {res.removed_executions}")
    if policy.max_size is not None:
        ctx.out.line(f"  Cached results evicted: {res.evicted_outputs}")
    ctx.out.line(f"  Objects retained: {res.retained_objects}")
    ctx.out.line(f"  Objects deleted: {res.deleted_objects}")
    ctx.out.line(f"  Partials deleted: {res.deleted_partials}")
    ctx.out.line(f"  Skipped (young): {res.skipped_young}")
    if res.bytes_freed:
        ctx.out.line(f"  Space reclaimed: {format_size(res.bytes_freed)}")
    ctx.out.line(f"  Object store size: {format_size(res.store_bytes)}")
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    """List a server's repositories."""
    if not is_remote(args.server):
        raise UsageError(f"{args.server}: repo list needs a server URL (http(s)://host[:port])")
    from e3.client.servers import list_remote

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

    rep = ctx.repository(args.repo).verify(repair=args.repair)
    ctx.out.data(rep)
    ctx.out.line(f"Objects:     {rep.objects}")
    ctx.out.line(f"Packages:    {rep.packages}")
    ctx.out.line(f"Workspaces:  {rep.workspaces} ({rep.refs} dataset refs)")
    ctx.out.line(f"Executions:  {rep.executions} ({rep.incomplete_executions} cut off before done)")
    ctx.out.line(f"Run records: {rep.runs}")
    if rep.partial_files:
        ctx.out.line(
            f"Files left by interrupted writes (staging files, unreferenced torn objects): "
            f"{rep.partial_files} (gc removes them)"
        )
    for line in rep.repaired:
        ctx.out.line(f"Repaired {line}")
    if not rep.problems:
        ctx.out.line("No problems found")
        return 0
    ctx.out.line(f"Problems ({len(rep.problems)}):")
    for p in rep.problems:
        ctx.out.line(f"  {p}")
    raise CorruptObject(f"{len(rep.problems)} problem(s) found in {args.repo}")
