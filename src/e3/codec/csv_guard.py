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
from collections.abc import Iterator

from e3.codec.tabular import option_inner
from e3.codec.types import EastType, type_kind

_DATETIME_SUSPECT = re.compile(rb"T\d\d:\d\d:\d\d(?:\.\d{1,2}(?!\d)|(?:\.\d+)?[+-]\d{4}(?!\d))")
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19
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
    kinds = {n: type_kind(option_inner(t)) for n, t in types.items()}
    risky = {n for n, k in kinds.items() if k in ("DateTime", "Integer")}
    suspects = _suspects(body, {kinds[n] for n in risky})
    if not risky or not any(_may_be_in(body, p, names, risky, delimiter) for p in suspects):
        return None
    reader = csv.reader(io.StringIO(body.decode("utf-8"), newline=""), delimiter=delimiter)
    row, line = 0, 1
    try:
        for cells in reader:
            if any(cells):
                row += 1
                for name, cell in zip(names, cells, strict=False):
                    t = types.get(name)
                    why = None if t is None else problem(cell, t)
                    if why is not None:
                        return line, row, name, cell, why
            line = reader.line_num + 1
    except csv.Error:
        return None  # not CSV Python reads: east-py's own reader will say what is wrong
    return None


def _suspects(body: bytes, kinds: set[str]) -> Iterator[int]:
    """Offsets of DateTimes and long integers east-py may misread (a superset), found in C.

    A run of 19 or more digits that is part of a float (after a ``.``, or before
    ``.``, ``e`` or ``E``) is not a suspect.
    """
    if "DateTime" in kinds:
        for m in _DATETIME_SUSPECT.finditer(body):
            yield m.start()
    if "Integer" not in kinds:
        return
    flat = body.translate(_DIGITS_TO_ZERO)
    pos = flat.find(_LONG_RUN)
    while pos >= 0:
        end = pos + len(_LONG_RUN)
        while end < len(flat) and flat[end] == 0x30:
            end += 1
        if body[pos - 1 : pos] != b"." and body[end : end + 1] not in (b".", b"e", b"E"):
            yield pos
        pos = flat.find(_LONG_RUN, end)


def _may_be_in(body: bytes, pos: int, names: list[str], risky: set[str], delimiter: str) -> bool:
    """Whether the match at ``pos`` may stand in a risky column (unquoted lines are split)."""
    start = body.rfind(b"\n", 0, pos) + 1
    end = body.find(b"\n", pos)
    line = body[start : end if end >= 0 else len(body)]
    if b'"' in line:
        return True  # quotes: let the csv module decide
    column = body[start:pos].count(delimiter.encode())
    return column < len(names) and names[column] in risky
