"""Table files (CSV, Parquet, Arrow) on the command line: options and output.

Shared by ``get``, ``set`` and ``convert``.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e3.cli.context import Context
from e3.errors import UsageError


def emit(ctx: Context, output: Path | None, produce: Callable[[Any], None]) -> int:
    """Run ``produce(binary file)`` into ``output`` (staged, then renamed) or stdout.

    Returns the bytes written to ``output`` (0 for stdout). A large table is
    written a slice at a time, never held as one ``bytes``.
    """
    if output is not None:
        from e3.base.atomic import staged

        with staged(output) as f:
            produce(f)
            return int(f.tell())
    ctx.out.flush()
    buffer = getattr(ctx.out.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (tests): collect, then write
        collected = io.BytesIO()
        produce(collected)
        ctx.out.write_bytes(collected.getvalue())
    else:
        produce(buffer)
        buffer.flush()
    return 0


def add_table_options(parser: argparse.ArgumentParser) -> None:
    """``--null-string``, ``--delimiter``, ``--no-header``, ``--column``."""
    g = parser.add_argument_group("tables (CSV, Parquet, Arrow)")
    g.add_argument(
        "--null-string",
        dest="null_strings",
        action="append",
        default=[],
        metavar="S",
        help="a CSV text meaning a missing value in Option fields, besides the empty cell "
        "(repeatable: --null-string NA --null-string NaN); when writing, the first is "
        "what none is written as",
    )
    g.add_argument("--delimiter", default=None, metavar="C", help="CSV field separator (default ,)")
    g.add_argument(
        "--no-header",
        dest="header",
        action="store_false",
        help="the CSV has no header line: its columns are the fields in order",
    )
    g.add_argument(
        "--column",
        dest="columns",
        action="append",
        default=[],
        metavar="NAME=FIELD",
        help="the column NAME holds field FIELD (for headers that are not field names; repeatable)",
    )


def table_options(args: argparse.Namespace) -> Any:
    """The :class:`~e3.codec.csv_io.CsvOptions` the flags describe (``None``: none given).

    With no flag the codec's defaults apply, and a command that writes no CSV
    (most ``e3 get`` calls) does not load the CSV codec at all.
    """
    if not args.columns and not args.null_strings and args.delimiter is None and args.header:
        return None
    from e3.codec.formats import csv_options

    columns: dict[str, str] = {}
    for spec in args.columns:
        name, sep, field = spec.rpartition("=")
        if not sep or not name or not field:
            raise UsageError(f"--column takes NAME=FIELD, got {spec!r}")
        columns[name] = field
    delimiter = args.delimiter
    if delimiter in ("\\t", "tab"):
        delimiter = "\t"
    return csv_options(
        delimiter=delimiter if delimiter is not None else ",",
        null_strings=args.null_strings,
        header=args.header,
        columns=columns,
    )
