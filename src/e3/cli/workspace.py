"""``e3 workspace create | deploy | list | remove | export | import``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from e3.cli.context import Context, require_file
from e3.cli.registry import add_command


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``workspace`` command group."""
    p = add_command(sub, "workspace")
    ws = p.add_subparsers(dest="workspace_command", metavar="<subcommand>", required=True)

    c = ws.add_parser("create", parents=[common], help="create an empty workspace")
    c.add_argument("repo")
    c.add_argument("name")
    c.set_defaults(handler=cmd_create)

    d = ws.add_parser("deploy", parents=[common], help="deploy a package into a workspace")
    d.add_argument("repo")
    d.add_argument("name")
    d.add_argument(
        "package", metavar="name[@version]", help="package; without @version the highest version"
    )
    d.set_defaults(handler=cmd_deploy)

    ls = ws.add_parser("list", parents=[common], help="list workspaces")
    ls.add_argument("repo")
    ls.set_defaults(handler=cmd_list)

    r = ws.add_parser("remove", parents=[common], help="delete a workspace")
    r.add_argument("repo")
    r.add_argument("name")
    r.set_defaults(handler=cmd_remove)

    e = ws.add_parser("export", parents=[common], help="export a workspace's data as a package zip")
    e.add_argument("repo")
    e.add_argument("name")
    e.add_argument("zip", type=Path)
    e.add_argument("--name", dest="package_name", help="package name (default: deployed package)")
    e.add_argument(
        "--version",
        dest="package_version",
        help="package version (default: <deployed version>-<timestamp>)",
    )
    e.set_defaults(handler=cmd_export)

    st = ws.add_parser(
        "status",
        parents=[common],
        help="what each task would do now (dry run) and which data is stale",
    )
    st.add_argument("repo")
    st.add_argument("name")
    st.add_argument(
        "--task",
        action="append",
        metavar="NAME",
        help="only this task (repeatable), the tasks it depends on and their datasets",
    )
    st.set_defaults(handler=cmd_status)

    i = ws.add_parser("import", parents=[common], help="import a zip and deploy it")
    i.add_argument("repo")
    i.add_argument("name")
    i.add_argument("zip", type=Path)
    i.add_argument(
        "--force",
        action="store_true",
        help="replace an existing name@version that has different content",
    )
    i.set_defaults(handler=cmd_import)


def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    """Create a workspace."""
    ctx.repository(args.repo).workspace_create(args.name)
    ctx.out.data({"workspace": args.name})
    ctx.out.line(f"Created workspace: {args.name}")
    ctx.out.line(f"Deploy a package with: e3 workspace deploy {args.repo} {args.name} <pkg[@ver]>")
    return 0


def cmd_deploy(ctx: Context, args: argparse.Namespace) -> int:
    """Deploy a package."""
    info = ctx.repository(args.repo).workspace_deploy(args.name, args.package)
    ctx.out.data({"workspace": args.name, "package": info})
    ctx.out.line(f"Deployed {info.ref} to workspace: {args.name}")
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    """List workspaces."""
    wss = ctx.repository(args.repo).workspace_list()
    ctx.out.data(wss)
    if not wss:
        ctx.out.line("No workspaces")
        return 0
    ctx.out.line("Workspaces:")
    for w in wss:
        if w.deployed:
            ctx.out.line(f"  {w.name} ({w.package_name}@{w.package_version})")
        else:
            ctx.out.line(f"  {w.name} (not deployed)")
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    """Remove a workspace."""
    ctx.repository(args.repo).workspace_remove(args.name)
    ctx.out.data({"removed": args.name})
    ctx.out.line(f"Removed workspace: {args.name}")
    return 0


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    """Export a workspace."""
    res = ctx.repository(args.repo).workspace_export(
        args.name, args.zip, name=args.package_name, version=args.package_version
    )
    ctx.out.data(res)
    ctx.out.line(f"Exported workspace {args.name} as {res.name}@{res.version}")
    ctx.out.line(f"  Output: {args.zip}")
    ctx.out.line(f"  Package hash: {res.hash[:12]}...")
    ctx.out.line(f"  Objects: {res.object_count}")
    return 0


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    """Import a zip and deploy it."""
    require_file(args.zip)
    svc = ctx.repository(args.repo)
    res = svc.workspace_import(args.name, args.zip, force=args.force)
    ctx.out.data(res)
    ctx.out.line(f"Imported {res.name}@{res.version}")
    ctx.out.line(f"  Package hash: {res.hash[:12]}...")
    ctx.out.line(f"  Objects: {res.object_count}")
    ctx.out.line(f"Deployed to workspace: {args.name}")
    return 0


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    """Print the workspace's dry-run status."""
    from e3.base.paths import format_keypath

    st = ctx.repository(args.repo).workspace_status(args.name, tasks=args.task)
    ctx.out.data(st)
    ctx.out.line(f"Workspace: {st.workspace} ({st.package})")
    if st.locked_by:
        ctx.out.line("Lock:")
        for h in st.locked_by:
            ctx.out.line(f"  {h}")
    dc = st.dataset_counts()
    tc = st.task_counts()
    ctx.out.line("Summary:")
    ctx.out.line("  Datasets: " + ", ".join(f"{n} {k}" for k, n in sorted(dc.items())))
    ctx.out.line("  Tasks: " + (", ".join(f"{n} {k}" for k, n in sorted(tc.items())) or "none"))
    ctx.out.line("Tasks:")
    for t in st.tasks:
        text = {
            "up-to-date": "up-to-date (cached)",
            "ready": "ready to run" + (f" ({t.detail})" if t.detail else ""),
            "waiting": f"waiting ({t.detail})",
            "in-progress": f"in-progress (PID {t.pid})",
            "stale-running": f"stale-running ({t.detail})",
            "failed": f"FAILED ({t.detail})",
            "error": f"ERROR: {t.detail}",
        }.get(t.state, t.state)
        ctx.out.line(f"  {t.name}: {text}")
        if t.depends_on:
            ctx.out.line(f"    depends on: {', '.join(t.depends_on)}")
    attention = [d for d in st.datasets if d.state != "up-to-date"]
    if attention:
        ctx.out.line("Datasets needing attention:")
        for d in attention:
            ctx.out.line(f"  {format_keypath(d.path)}: {d.state}")
    else:
        ctx.out.line("All datasets up-to-date")
    return 0
