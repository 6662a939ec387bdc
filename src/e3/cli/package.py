"""``e3 package import | export | list | remove``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from e3.cli.context import Context, require_file
from e3.cli.registry import add_command


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``package`` command group."""
    p = add_command(sub, "package")
    ps = p.add_subparsers(dest="package_command", metavar="<subcommand>", required=True)

    i = ps.add_parser("import", parents=[common], help="import a package zip")
    i.add_argument("repo")
    i.add_argument("zip", type=Path)
    i.add_argument(
        "--force",
        action="store_true",
        help="replace an existing name@version that has different content",
    )
    i.set_defaults(handler=cmd_import)

    e = ps.add_parser("export", parents=[common], help="export a package to a zip")
    e.add_argument("repo")
    e.add_argument("package", metavar="name[@version]")
    e.add_argument("zip", type=Path)
    e.set_defaults(handler=cmd_export)

    ls = ps.add_parser("list", parents=[common], help="list packages")
    ls.add_argument("repo")
    ls.set_defaults(handler=cmd_list)

    b = ps.add_parser(
        "build", parents=[common], help="export a package defined in Python (e3.package) to a zip"
    )
    b.add_argument(
        "source",
        metavar="file.py|module[:name]",
        help="Python file or module defining the package; ':name' picks one",
    )
    b.add_argument("-o", "--output", type=Path, help="zip to write (default: <name>-<version>.zip)")
    b.add_argument(
        "--traceback",
        action="store_true",
        help="on a mistake in the file, also print the traceback through its own code",
    )
    b.set_defaults(handler=cmd_build)

    r = ps.add_parser("remove", parents=[common], help="remove a package (objects stay until gc)")
    r.add_argument("repo")
    r.add_argument("package", metavar="name[@version]")
    r.set_defaults(handler=cmd_remove)


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    """Import a zip."""
    require_file(args.zip)
    res = ctx.repository(args.repo).package_import(args.zip, force=args.force)
    ctx.out.data(res)
    verb = "Replaced" if res.replaced else "Imported"
    ctx.out.line(f"{verb} {res.name}@{res.version}")
    ctx.out.line(f"  Package hash: {res.hash[:12]}...")
    ctx.out.line(f"  Objects: {res.object_count} ({res.new_objects} new)")
    return 0


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    """Export a zip."""
    res = ctx.repository(args.repo).package_export(args.package, args.zip)
    ctx.out.data(res)
    ctx.out.line(f"Exported {res.name}@{res.version} to {args.zip}")
    ctx.out.line(f"  Package hash: {res.hash[:12]}...")
    ctx.out.line(f"  Objects: {res.object_count}")
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    """List packages."""
    pkgs = ctx.repository(args.repo).package_list()
    ctx.out.data(pkgs)
    if not pkgs:
        ctx.out.line("No packages installed")
        return 0
    ctx.out.line("Packages:")
    for p in pkgs:
        ctx.out.line(f"  {p.ref}")
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    """Remove a package ref."""
    info = ctx.repository(args.repo).package_remove(args.package)
    ctx.out.data(info)
    ctx.out.line(f"Removed {info.ref}")
    ctx.out.line("Run `e3 repo gc` to free the space its objects use.")
    return 0


def cmd_build(ctx: Context, args: argparse.Namespace) -> int:
    """Export a Python-defined package."""
    from e3.errors import E3Error
    from e3.sdk.loader import load_one
    from e3.sdk.package import export

    try:
        pkg = load_one(args.source)
    except E3Error as exc:
        if args.traceback and exc.details.get("traceback"):
            ctx.out.error(exc.details["traceback"].rstrip())
        raise
    out = args.output or Path(f"{pkg.name.replace('/', '-').lstrip('@')}-{pkg.version}.zip")
    res = export(pkg, out)
    ctx.out.data({"output": str(out), "result": res})
    ctx.out.line(f"Built {res.name}@{res.version} -> {out}")
    ctx.out.line(f"  Package hash: {res.hash[:12]}...")
    ctx.out.line(f"  Objects: {res.object_count}")
    return 0
