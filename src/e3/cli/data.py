"""Dataset commands: ``e3 list | get | set | status``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from e3.cli.context import Context
from e3.cli.output import format_size
from e3.cli.registry import add_command
from e3.cli.table_args import add_table_options, emit, table_options
from e3.errors import StorageError, UsageError

#: ``get -f`` choices (e3.codec.formats.OUTPUTS less ``type``; kept here so the
#: parser is built without importing the codec).
GET_FORMATS = ["east", "json", "beast2", "csv", "parquet", "arrow", "table"]
SET_FORMATS = ["east", "json", "csv", "beast2", "parquet", "arrow"]


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
    g.add_argument(
        "-f",
        "--format",
        choices=GET_FORMATS,
        default=None,
        help="output format (default: from -o's extension; at a terminal a table of "
        "records shows as a table, otherwise east)",
    )
    g.add_argument("-o", "--output", type=Path, help="write to a file instead of stdout")
    g.add_argument("--rows", type=int, default=20, metavar="N", help="rows a table shows")
    add_table_options(g)
    g.set_defaults(handler=cmd_get)

    s = add_command(sub, "set", common)
    s.add_argument("repo")
    s.add_argument("path", metavar="ws.path")
    s.add_argument(
        "file", help=".east, .json, .csv, .parquet, .arrow or .beast2 file ('-' for stdin)"
    )
    s.add_argument(
        "--type",
        dest="type_text",
        help="East type of the value (.Integer); must equal the dataset's type",
    )
    s.add_argument(
        "--format",
        choices=SET_FORMATS,
        help="input format (default: from the Beast2 or Parquet magic, else the extension)",
    )
    add_table_options(s)
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
    from e3.codec.formats import format_from_name, write_value

    ws, path = parse_workspace_path(args.path)
    if args.format == "beast2" and args.output is not None:  # streamed, never held whole
        _type, size = ctx.repository(args.repo).dataset_save(ws, path, args.output)
        if size is None:
            raise UsageError(f"{args.path} is null; null has no Beast2 value to print")
        ctx.out.data({"path": args.path, "output": str(args.output), "bytes": size})
        return 0
    east_type, data = ctx.repository(args.repo).dataset_get(ws, path)
    if ctx.out.json_mode and args.output is None:
        return _get_json(ctx, args, east_type, data)
    fmt = args.format or _default_get_format(ctx, args, east_type, format_from_name)
    if fmt == "beast2" and data is None:
        raise UsageError(f"{args.path} is null; null has no Beast2 value to print")
    value = None if data is None or fmt == "beast2" else _decode(data, east_type, args.path)
    options = table_options(args)

    def produce(sink: Any) -> None:
        if fmt == "beast2":
            sink.write(data)
        else:
            write_value(value, east_type, fmt, sink, csv=options, width=_width(), rows=args.rows)

    size = emit(ctx, args.output, produce)
    if args.output is not None:
        ctx.out.data({"path": args.path, "output": str(args.output), "bytes": size})
    return 0


def _get_json(ctx: Context, args: argparse.Namespace, east_type: Any, data: bytes | None) -> int:
    """``--json``: the value as East's JSON inside the command's JSON result."""
    import json

    from e3.codec import beast2
    from e3.codec.text import to_json

    value = None
    if data is not None:
        value = json.loads(
            to_json(beast2.decode(data, east_type, native=True), east_type, indent=None)
        )
    ctx.out.data({"path": args.path, "value": value})
    return 0


def _default_get_format(
    ctx: Context, args: argparse.Namespace, east_type: Any, by_name: Any
) -> str:
    """From ``-o``'s extension; a table of records at a terminal; else ``east``."""
    if args.output is not None:
        return str(by_name(str(args.output)) or "east")
    from e3.codec.tabular import is_table

    if is_table(east_type) and not ctx.out.json_mode and _is_tty(ctx.out.stdout):
        return "table"
    return "east"


def _decode(data: bytes, east_type: Any, where: str) -> Any:
    """Decode a stored value, refusing first one this machine clearly cannot hold."""
    from e3.codec import beast2
    from e3.codec.memory import check_fits

    check_fits(len(data), "beast2", where)
    return beast2.decode(data, east_type, native=True)  # written straight out


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _width() -> int:
    import shutil

    return max(40, shutil.get_terminal_size((100, 24)).columns)


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
    from e3.codec.formats import detect_format, read_file, read_value
    from e3.codec.types import parse_type, print_type, same_type
    from e3.errors import PermissionDenied, TypeMismatch

    ws, path = parse_workspace_path(args.path)
    svc = ctx.repository(args.repo)
    entry = svc.dataset_status(ws, path)
    if not entry.writable:
        raise PermissionDenied(
            f"dataset {format_workspace_path(ws, path)} is not writable (it is computed by a task)"
        )
    declared = entry.type
    if args.type_text is not None:
        given = parse_type(args.type_text)
        if not same_type(given, declared):
            raise TypeMismatch(
                f"type mismatch for {format_workspace_path(ws, path)}: the dataset is "
                f"{print_type(declared)} but --type is {print_type(given)}"
            )
    options = table_options(args)
    if args.file == "-":
        data = _read_input(args.file)
        fmt = detect_format(data, explicit=args.format, name=None)
        east_type, value = read_value(data, fmt, declared, where="stdin", csv=options)
    else:
        east_type, value = read_file(args.file, declared, fmt=args.format, csv=options)
    data = beast2.encode(value, east_type)
    del value  # the repository decodes the bytes again to check them: hold one value at a time
    h = svc.dataset_set(ws, path, data)
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
