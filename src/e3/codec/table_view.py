"""An ``Array`` of ``Struct`` as an aligned text table, for people at a terminal.

Shows the first rows, then how many there are in all; a table wider than the
terminal loses its last columns (``…`` says so) and long cells are cut, so one
row is always one line. ``none`` prints as an empty cell, DateTimes as ISO text
without a zone, Floats as Python prints them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from e3.codec.tabular import is_option, table_fields
from e3.codec.tabular import rows as slice_rows
from e3.codec.types import EastType, EastValue, type_kind

#: Rows shown before the count.
ROWS = 20
#: Widest a cell is shown.
CELL = 24


def render_table(
    value: EastValue, east_type: EastType, *, rows: int = ROWS, width: int = 100
) -> str:
    """The table's text (ends with a newline): header, rule, rows, row count."""
    fields = table_fields(east_type, "a table view")
    n = len(value)
    shown = slice_rows(value, 0, min(rows, n)) if n else []
    grid = [[name for name, _ in fields]]
    for row in shown:
        grid.append([_cell(row[name], t) for name, t in fields])
    widths = [max(len(r[i]) for r in grid) for i in range(len(fields))]
    numeric = [type_kind(_inner(t)) in ("Integer", "Float") for _, t in fields]
    keep, used = 0, 0
    for w in widths:
        if keep and used + w + 2 > width - 3:
            break
        used += w + 2
        keep += 1
    cut = keep < len(fields)
    lines = []
    for r_i, r in enumerate(grid):
        cells = [
            (c.rjust(w) if numeric[i] and r_i else c.ljust(w))
            for i, (c, w) in enumerate(zip(r[:keep], widths[:keep], strict=True))
        ]
        lines.append(("  ".join(cells) + ("  …" if cut else "")).rstrip())
        if r_i == 0:
            lines.append("  ".join("-" * w for w in widths[:keep]))
    lines.append(_footer(n, len(grid) - 1, len(fields) - keep))
    return "\n".join(lines) + "\n"


def _footer(n: int, shown: int, hidden: int) -> str:
    """``(344 rows, first 20 shown, 2 more columns not shown)``."""
    parts = [f"{n} row{'s' if n != 1 else ''}"]
    if n > shown:
        parts.append(f"first {shown} shown")
    if hidden:
        parts.append(f"{hidden} more column{'s' if hidden != 1 else ''} not shown")
    return f"({', '.join(parts)})"


def _inner(t: EastType) -> EastType:
    return t.value[1]["type"] if is_option(t) else t


def _cell(v: Any, t: EastType) -> str:
    if is_option(t):
        if v.type == "none":
            return ""
        return _cell(v.value, t.value[1]["type"])
    kind = type_kind(t)
    if kind == "DateTime" and isinstance(v, datetime):
        text = v.replace(tzinfo=None).isoformat(timespec="milliseconds")
    elif kind == "Boolean":
        text = "true" if v else "false"
    elif kind == "Blob":
        text = "0x" + bytes(v).hex()
    elif kind in ("Array", "Set", "Dict", "Struct", "Variant"):
        from e3.codec.text import to_east

        text = to_east(v, t)
    else:
        text = str(v)
    text = " ".join(text.split()) if ("\n" in text or "\t" in text) else text
    return text if len(text) <= CELL else text[: CELL - 1] + "…"
