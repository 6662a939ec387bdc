"""``e3 convert``: between ``.east``, JSON and Beast2, from files or stdin (``--json``: to JSON)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from e3.cli.context import Context
from e3.cli.registry import add_command
from e3.errors import StorageError, UsageError


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``convert``."""
    c = add_command(sub, "convert", common)
    c.add_argument("input", nargs="?", default="-", help="input file (default: stdin)")
    c.add_argument(
        "--from",
        dest="from_format",
        choices=["east", "json", "beast2", "csv"],
        help="input format (default: Beast2 magic, else the extension, else east)",
    )
    c.add_argument(
        "--to",
        dest="to_format",
        choices=["east", "json", "beast2", "type"],
        help="output format (default: from -o's extension, else east)",
    )
    c.add_argument("-o", "--output", type=Path, help="output file (default: stdout)")
    c.add_argument(
        "--type",
        dest="type_text",
        help="East type of the value (.Integer); needed for json/csv input, and for .east "
        "text whose literal does not decide its type (an empty list, a variant)",
    )
    c.set_defaults(handler=cmd_convert)


def cmd_convert(ctx: Context, args: argparse.Namespace) -> int:
    """Convert a value."""
    from e3.codec.formats import detect_format, format_from_name, read_value, render_value
    from e3.codec.types import parse_type

    if args.input == "-":
        data = sys.stdin.buffer.read()
        name = None
    else:
        try:
            data = Path(args.input).read_bytes()
        except FileNotFoundError:
            raise UsageError(f"file not found: {args.input}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {args.input}: {exc.strerror}") from exc
        name = args.input
    given = parse_type(args.type_text) if args.type_text else None
    fmt = detect_format(data, explicit=args.from_format, name=name)
    east_type, value = read_value(data, fmt, given, where=name or "stdin")
    if args.json:  # the common --json flag: JSON output, unless --to says otherwise
        if args.to_format not in (None, "json"):
            raise UsageError(f"--json conflicts with --to {args.to_format}")
        args.to_format = "json"
    to = args.to_format or format_from_name(str(args.output) if args.output else None) or "east"
    if to == "csv":
        raise UsageError("convert writes east, json, beast2 or type")
    payload = render_value(value, east_type, to)
    if args.output is not None:
        from e3.base.atomic import write_bytes

        write_bytes(args.output, payload, durable=False)
    else:
        ctx.out.write_bytes(payload)
    return 0
