"""Dataset commands: ``e3 list | get | set | status``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from e3.cli.context import Context
from e3.cli.output import format_size
from e3.cli.registry import add_command
from e3.errors import StorageError, UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the dataset commands."""
    ls = add_command(sub, "list", common)
    ls.add_argument("repo")
    ls.add_argument(
        "path",
        nargs="?",
        metavar="ws[.path]",
        help="workspace and optional dataset path (ws.inputs)",
    )
    ls.add_argument("-r", "--recursive", action="store_true", help="every dataset below the path")
    ls.add_argument("-l", "--long", action="store_true", help="type, status and size")
    ls.set_defaults(handler=cmd_list)

    g = add_command(sub, "get", common)
    g.add_argument("repo")
    g.add_argument("path", metavar="ws.path")
    g.add_argument("-f", "--format", choices=["east", "json", "beast2"], default="east")
    g.add_argument("-o", "--output", type=Path, help="write to a file instead of stdout")
    g.set_defaults(handler=cmd_get)

    s = add_command(sub, "set", common)
    s.add_argument("repo")
    s.add_argument("path", metavar="ws.path")
    s.add_argument("file", help=".east, .json, .csv or .beast2 file ('-' for stdin)")
    s.add_argument(
        "--type",
        dest="type_text",
        help="East type of the value (.Integer); must equal the dataset's type",
    )
    s.add_argument(
        "--format",
        choices=["east", "json", "csv", "beast2"],
        help="input format (default: from the extension or Beast2 magic)",
    )
    s.set_defaults(handler=cmd_set)

    st = add_command(sub, "status", common)
    st.add_argument("repo")
    st.add_argument("path", metavar="ws.path")
    st.set_defaults(handler=cmd_status)


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    """List workspaces (no path) or datasets."""
    svc = ctx.repository(args.repo)
    if not args.path:
        wss = svc.workspace_list()
        ctx.out.data(wss)
        for w in wss:
            pkg = f"{w.package_name}@{w.package_version}" if w.deployed else "not deployed"
            ctx.out.line(f"{w.name}  ({pkg})")
        return 0
    from e3.base.paths import format_keypath, parse_workspace_path
    from e3.codec.types import print_type

    ws, path = parse_workspace_path(args.path)
    entries = svc.dataset_list(ws, path, recursive=args.recursive, with_status=args.long)
    ctx.out.data(entries)
    if args.long:
        head = "PATH" if args.recursive else "NAME"
        rows = []
        for e in entries:
            name = format_keypath(e.path) if args.recursive else e.path[-1]
            if e.kind == "tree":
                rows.append([name, "(tree)", "", ""])
            else:
                size = format_size(e.size) if e.status == "set" else ""
                rows.append([name, print_type(e.type), e.status, size])
        ctx.out.table([head, "TYPE", "STATUS", "SIZE"], rows)
        return 0
    if not entries:
        ctx.out.line("(empty)")
    for e in entries:
        ctx.out.line(format_keypath(e.path) if args.recursive else e.path[-1])
    return 0


def cmd_get(ctx: Context, args: argparse.Namespace) -> int:
    """Print (or save) a dataset's value."""
    from e3.base.paths import parse_workspace_path
    from e3.codec import beast2
    from e3.codec.formats import render_value

    ws, path = parse_workspace_path(args.path)
    if args.format == "beast2" and args.output is not None:  # streamed, never held whole
        _type, size = ctx.repository(args.repo).dataset_save(ws, path, args.output)
        if size is None:
            raise UsageError(f"{args.path} is null; null has no Beast2 value to print")
        ctx.out.data({"path": args.path, "output": str(args.output), "bytes": size})
        return 0
    east_type, data = ctx.repository(args.repo).dataset_get(ws, path)
    if args.format == "beast2":
        if data is None:
            raise UsageError(f"{args.path} is null; null has no Beast2 value to print")
        payload = data
    else:
        value = None if data is None else beast2.decode(data, east_type)
        payload = render_value(value, east_type, args.format)
    if args.output is not None:
        from e3.base.atomic import write_bytes

        write_bytes(args.output, payload, durable=False)
        ctx.out.data({"path": args.path, "output": str(args.output), "bytes": len(payload)})
        return 0
    if ctx.out.json_mode:
        from e3.codec.text import to_json

        ctx.out.data(
            {
                "path": args.path,
                "value": None
                if data is None
                else __import__("json").loads(
                    to_json(beast2.decode(data, east_type), east_type, indent=None)
                ),
            }
        )
        return 0
    ctx.out.write_bytes(payload)
    return 0


def _read_input(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(file).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"file not found: {file}") from None
    except IsADirectoryError:
        raise UsageError(f"{file} is a directory, not a value file") from None
    except OSError as exc:
        raise StorageError(f"cannot read {file}: {exc.strerror}") from exc


def cmd_set(ctx: Context, args: argparse.Namespace) -> int:
    """Set a dataset from a file, checked against the dataset's declared type."""
    from e3.base.paths import format_workspace_path, parse_workspace_path
    from e3.codec import beast2
    from e3.codec.formats import detect_format, read_value
    from e3.codec.types import parse_type, print_type, same_type
    from e3.errors import PermissionDenied, TypeMismatch

    ws, path = parse_workspace_path(args.path)
    svc = ctx.repository(args.repo)
    entry = svc.dataset_status(ws, path)
    if not entry.writable:
        raise PermissionDenied(
            f"dataset {format_workspace_path(ws, path)} is not writable (it is computed by a task)"
        )
    data = _read_input(args.file)
    declared = entry.type
    if args.type_text is not None:
        given = parse_type(args.type_text)
        if not same_type(given, declared):
            raise TypeMismatch(
                f"type mismatch for {format_workspace_path(ws, path)}: the dataset is "
                f"{print_type(declared)} but --type is {print_type(given)}"
            )
    fmt = detect_format(data, explicit=args.format, name=None if args.file == "-" else args.file)
    east_type, value = read_value(data, fmt, declared, where=args.file)
    h = svc.dataset_set(ws, path, beast2.encode(value, east_type))
    ctx.out.data({"path": args.path, "hash": h, "source": args.file})
    ctx.out.line(f"Set {args.path} from {args.file}")
    return 0


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    """Show one dataset's status."""
    from e3.base.paths import format_keypath, parse_workspace_path
    from e3.codec.types import print_type

    ws, path = parse_workspace_path(args.path)
    e = ctx.repository(args.repo).dataset_status(ws, path)
    ctx.out.data(e)
    ctx.out.line(f"Path:     {format_keypath(e.path)}")
    ctx.out.line(f"Type:     {print_type(e.type)}")
    ctx.out.line(f"Writable: {'yes' if e.writable else 'no'}")
    ctx.out.line(f"Status:   {e.status}")
    if e.status == "set":
        ctx.out.line(f"Hash:     {e.hash}")
        ctx.out.line(f"Size:     {format_size(e.size)}")
    elif e.status == "null":
        ctx.out.line("Hash:     (null)")
    return 0
