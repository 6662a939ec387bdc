"""Cells east-py 1.0.97's CSV reader gets wrong without saying so, refused instead.

Found while building e3's CSV support (the tripwire tests in
``tests/codec/test_csv_io.py`` fail once east-py reads them right, and then
this module can go):

* a DateTime fraction of one or two digits is read as that many
  *milliseconds* (``10:00:00.1`` becomes ``10:00:00.001``);
* a zone offset without a colon (``+0200``) gives a date days away;
* an Integer beyond the 64-bit range is clamped to the largest Integer.

A chunk is first searched for these shapes with one regular expression (fast,
in C); only a chunk where one occurs is parsed by Python's ``csv`` module to
see whether it stands in a DateTime or Integer field (it may be text in a
String field, which is fine).
"""

from __future__ import annotations

import csv
import io
import re

from e3.codec.tabular import option_inner
from e3.codec.types import EastType, type_kind

_SUSPECT = re.compile(rb"T\d\d:\d\d:\d\d(?:\.\d{1,2}(?!\d)|(?:\.\d+)?[+-]\d{4}(?!\d))|\d{19,}")
_SHORT_FRACTION = re.compile(r".*T\d\d:\d\d:\d\d\.\d{1,2}(?:Z|[+-]\d\d:?\d\d)?")
_NO_COLON_ZONE = re.compile(r".*T\d\d:\d\d:\d\d(?:\.\d+)?[+-]\d{4}")
_I64 = 2**63


def problem(cell: str, t: EastType) -> str | None:
    """Why east-py would misread ``cell`` as a value of ``t`` (``None``: it reads it right)."""
    kind = type_kind(option_inner(t))
    if kind == "DateTime":
        if _SHORT_FRACTION.fullmatch(cell):
            return "has a fraction of a second with fewer than three digits (write .100, not .1)"
        if _NO_COLON_ZONE.fullmatch(cell):
            return "has a zone offset without a colon (write +02:00, not +0200)"
    elif kind == "Integer" and re.fullmatch(r"-?\d{19,}", cell) and not -_I64 <= int(cell) < _I64:
        return "is outside the 64-bit Integer range"
    return None


def first_misread(
    body: bytes, names: list[str], types: dict[str, EastType], delimiter: str
) -> tuple[int, int, str, str, str] | None:
    """``(line, row, column name, cell, problem)`` of the first cell east-py would misread.

    ``names`` are the header's field names in column order; ``line`` and
    ``row`` count from 1 within ``body``.
    """
    if not any(type_kind(option_inner(t)) in ("DateTime", "Integer") for t in types.values()):
        return None
    if _SUSPECT.search(body) is None:
        return None
    reader = csv.reader(io.StringIO(body.decode("utf-8")), delimiter=delimiter)
    row, line = 0, 1
    for cells in reader:
        if any(cells):
            row += 1
            for name, cell in zip(names, cells, strict=False):
                t = types.get(name)
                why = None if t is None else problem(cell, t)
                if why is not None:
                    return line, row, name, cell, why
        line = reader.line_num + 1
    return None
