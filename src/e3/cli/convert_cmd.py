"""``e3 convert``: a value between formats (``.east``, JSON, Beast2, CSV, Parquet, Arrow).

From a file or stdin, to a file or stdout (``--json``: to JSON). ``--infer-type``
prints the East type of a sample file's data instead, so a package's input can
be declared from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from e3.cli.context import Context
from e3.cli.registry import add_command
from e3.cli.table_args import add_table_options, emit, table_options
from e3.errors import UsageError

_INPUTS = ["east", "json", "beast2", "csv", "parquet", "arrow"]
_OUTPUTS = [*_INPUTS, "table", "type"]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``convert``."""
    c = add_command(sub, "convert", common)
    c.add_argument("input", nargs="?", default="-", help="input file (default: stdin)")
    c.add_argument(
        "--from",
        dest="from_format",
        choices=_INPUTS,
        help="input format (default: Beast2 or Parquet magic, else the extension, else east)",
    )
    c.add_argument(
        "--to",
        dest="to_format",
        choices=_OUTPUTS,
        help="output format (default: from -o's extension, else east)",
    )
    c.add_argument("-o", "--output", type=Path, help="output file (default: stdout)")
    c.add_argument(
        "--type",
        dest="type_text",
        help="East type of the value (.Integer); needed for json input, and for .east "
        "text whose literal does not decide its type (an empty list, a variant); a table "
        "(CSV, Parquet, Arrow) without it has its data's type",
    )
    c.add_argument(
        "--infer-type",
        action="store_true",
        help="print the East type of the input's data (a table's columns, a literal's type)",
    )
    add_table_options(c)
    c.set_defaults(handler=cmd_convert)


def cmd_convert(ctx: Context, args: argparse.Namespace) -> int:
    """Convert a value, or print the type of its data."""
    from e3.codec.formats import detect_format, format_from_name, read_file, read_value
    from e3.codec.types import parse_type

    options = table_options(args)
    given = parse_type(args.type_text) if args.type_text else None
    if args.infer_type:
        return _infer(ctx, args, options)
    if args.input == "-":
        data = sys.stdin.buffer.read()
        fmt = detect_format(data, explicit=args.from_format, name=None)
        east_type, value = read_value(data, fmt, given, where="stdin", csv=options)
    else:
        east_type, value = read_file(args.input, given, fmt=args.from_format, csv=options)
    if args.json:  # the common --json flag: JSON output, unless --to says otherwise
        if args.to_format not in (None, "json"):
            raise UsageError(f"--json conflicts with --to {args.to_format}")
        args.to_format = "json"
    to = args.to_format or format_from_name(str(args.output) if args.output else None) or "east"
    _write(ctx, args, value, east_type, to, options)
    return 0


def _infer(ctx: Context, args: argparse.Namespace, options: Any) -> int:
    from e3.codec.formats import csv_options, detect_format, read_value, type_from_file
    from e3.codec.tabular import type_text

    options = options or csv_options()
    if args.input == "-":
        data = sys.stdin.buffer.read()
        fmt = detect_format(data, explicit=args.from_format, name=None)
        east_type = read_value(data, fmt, None, where="stdin", csv=options)[0]
    else:
        east_type = type_from_file(
            args.input,
            format=args.from_format,
            delimiter=options.delimiter,
            null_strings=options.null_strings,
            header=options.header,
            columns=options.columns,
        )
    payload = (type_text(east_type) + "\n").encode()
    if args.output is not None:
        from e3.base.atomic import write_bytes

        write_bytes(args.output, payload, durable=False)
    else:
        ctx.out.write_bytes(payload)
    return 0


def _write(
    ctx: Context, args: argparse.Namespace, value: Any, east_type: Any, to: str, options: Any
) -> None:
    from e3.codec.formats import write_value

    emit(ctx, args.output, lambda sink: write_value(value, east_type, to, sink, csv=options))
