"""The type of a CSV file's data, for declaring a package input from a sample file.

Every cell of every column is looked at (a missing value on the last line
still makes its column an Option). A column is the narrowest of Integer,
Float, Boolean, DateTime and String that holds all its present cells, in the
spellings east-py's CSV reader accepts, and an ``Option`` if any cell is
missing (empty, or one of the null strings); a column without any value is an
``Option<String>``.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from e3.codec.csv_io import CsvOptions
from e3.codec.types import (
    ArrayType,
    BooleanType,
    DateTimeType,
    EastType,
    FloatType,
    IntegerType,
    OptionType,
    StringType,
    StructType,
)
from e3.errors import DecodeError

_INTEGER = re.compile(r"-?\d+")
_FLOAT = re.compile(
    r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|NaN|nan|Infinity|inf)"
)
# Three-digit fractions only: east-py 1.0.97 reads ".1" as one millisecond.
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3,9})?(?:Z|[+-]\d\d:\d\d)?")
_I64 = 2**63
#: Kinds from narrowest to widest: a column is the first that holds every cell.
_ORDER = ("Integer", "Float", "Boolean", "DateTime", "String")
_TYPES = {
    "Integer": IntegerType,
    "Float": FloatType,
    "Boolean": BooleanType,
    "DateTime": DateTimeType,
    "String": StringType,
}


def _fits(kind: str, cell: str) -> bool:
    if kind == "Integer":
        return _INTEGER.fullmatch(cell) is not None and -_I64 <= int(cell) < _I64
    if kind == "Float":
        return _FLOAT.fullmatch(cell) is not None
    if kind == "Boolean":
        return cell in ("true", "false")
    if kind == "DateTime":
        return _DATETIME.fullmatch(cell) is not None
    return True


class _Column:
    def __init__(self) -> None:
        self.kinds = list(_ORDER)
        self.missing = False
        self.present = False

    def see(self, cell: str, nulls: set[str]) -> None:
        if cell in nulls:
            self.missing = True
            return
        self.present = True
        while not _fits(self.kinds[0], cell):
            self.kinds.pop(0)

    def type(self) -> EastType:
        if not self.present:  # no value at all: any text could come
            return OptionType(StringType)
        t = _TYPES[self.kinds[0]]
        return OptionType(t) if self.missing else t


def infer_csv_type(data: bytes | Any, options: CsvOptions | None = None) -> EastType:
    """The ``Array<Struct>`` type of a CSV file's data.

    Header names become field names (after ``options.columns``); without a
    header, fields are ``column1``, ``column2``…

    Raises:
        DecodeError: not UTF-8 text, or no rows at all.
    """
    options = options or CsvOptions()
    options.check()
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not UTF-8 text (byte {exc.start})") from exc
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=options.delimiter)
    try:
        return _infer(rows, options)
    except csv.Error as exc:
        raise DecodeError(f"cannot read the CSV: line {rows.line_num}: {exc}") from exc


def _infer(rows: Any, options: CsvOptions) -> EastType:
    header = next(rows, None) if options.header else None
    nulls = set(options.missing())
    columns: list[_Column] = []
    for cells in rows:
        if not any(cells):
            continue  # east-py skips rows of empty cells
        while len(columns) < len(cells):
            columns.append(_Column())
        for col, cell in zip(columns, cells, strict=False):
            col.see(cell, nulls)
        for col in columns[len(cells) :]:
            col.missing = True  # a short row: its last cells are missing
    if header is None and not columns:
        raise DecodeError("no rows to infer a type from")
    names = [options.columns.get(h, h) for h in header] if header is not None else []
    names += [f"column{i + 1}" for i in range(len(names), len(columns))]
    while len(columns) < len(names):
        columns.append(_Column())
    return ArrayType(StructType([(n, c.type()) for n, c in zip(names, columns, strict=True)]))
