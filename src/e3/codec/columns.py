"""Tables between East values and columns of numbers, without a Python object per cell.

east-py moves an ``Array<Struct>`` to and from columns in one C call
(``to_columns``/``from_columns``), but only Integer, Float and Boolean fields
travel as numpy buffers; Strings travel as lists of ``str``, and anything else
— an Option, a DateTime — one boxed Python object per cell, which costs
microseconds each and dominates reading and writing Parquet.

So a table crosses as a *packed* table instead: every DateTime as its epoch
milliseconds (an Integer), every ``Option<T>`` of such a field as the value
(or a filler) plus a Boolean saying whether it is present. A compiled East
function converts between the packed and the real rows in C, both ways.
Fields of other types (Blob, Null, Array, Struct, other variants) are carried
through unchanged, cell by cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from east import East

from e3.codec.tabular import is_option, option_inner, table_fields
from e3.codec.types import (
    ArrayType,
    BooleanType,
    EastType,
    EastValue,
    IntegerType,
    StructType,
    none,
    some,
    type_kind,
)

#: Kinds that travel packed (as numpy buffers, or a list of ``str`` for String).
FLAT_KINDS = ("Integer", "Float", "Boolean", "String", "DateTime")
#: The value a missing cell's slot holds in a packed column.
FILLERS: dict[str, Any] = {
    "Integer": 0,
    "Float": 0.0,
    "Boolean": False,
    "String": "",
    "DateTime": 0,
}


@dataclass(frozen=True)
class Column:
    """How one field travels: its packed value column ``value`` and, for an Option, ``present``."""

    name: str
    type: EastType
    kind: str  # the flat kind, or "cell" for a field carried unchanged
    optional: bool
    value: str  # the packed field holding it
    present: str | None  # the packed Boolean field (an Option of a flat kind)


@dataclass(frozen=True)
class Plan:
    """The packed form of one ``Array<Struct>`` type and the two compiled conversions."""

    columns: list[Column]
    packed: EastType  # the packed row Struct
    pack: Any  # compiled: Array<packed> -> the table
    unpack: Any  # compiled: the table -> Array<packed>


def _column(i: int, name: str, t: EastType) -> Column:
    inner = option_inner(t)
    kind = type_kind(inner)
    if kind not in FLAT_KINDS:
        return Column(name, t, "cell", False, f"v{i}", None)
    optional = is_option(t)
    return Column(name, t, kind, optional, f"v{i}", f"p{i}" if optional else None)


def _packed_type(c: Column) -> EastType:
    if c.kind == "cell":
        return c.type
    if c.kind == "DateTime":
        return IntegerType
    return option_inner(c.type)


@lru_cache(maxsize=64)
def plan(table_type: EastType) -> Plan:
    """The packing plan of a table type (compiled once per type)."""
    columns = [_column(i, n, t) for i, (n, t) in enumerate(table_fields(table_type))]
    packed = StructType(
        [(c.value, _packed_type(c)) for c in columns]
        + [(c.present, BooleanType) for c in columns if c.present is not None]
    )
    row_type = table_type.value

    def pack_body(b: Any, rows: Any) -> Any:
        return rows.map(lambda b2, r: {c.name: _unpacked(r, c) for c in columns}, out=row_type)

    def unpack_body(b: Any, rows: Any) -> Any:
        def row(b2: Any, r: Any) -> Any:
            out = {}
            for c in columns:
                out.update(_packed(r[c.name], c))
            return out

        return rows.map(row, out=packed)

    pack = East.compile(East.function([ArrayType(packed)], table_type, pack_body), [])
    unpack = East.compile(East.function([table_type], ArrayType(packed), unpack_body), [])
    return Plan(columns, packed, pack, unpack)


def _unpacked(r: Any, c: Column) -> Any:
    """The real cell of column ``c`` from packed row ``r`` (traced)."""
    v = r[c.value]
    if c.kind == "DateTime":
        v = East.DateTime.from_epoch_milliseconds(v)
    if c.present is not None:
        return East.if_else(r[c.present], some(v), none)
    return v


def _packed(v: Any, c: Column) -> dict[str, Any]:
    """The packed fields of cell ``v`` of column ``c`` (traced)."""
    if c.kind == "cell":
        return {c.value: v}
    out = {}
    if c.present is not None:
        out[c.present] = v.is_some()
        filler = FILLERS[c.kind]
        if c.kind == "DateTime":
            filler = East.DateTime.from_epoch_milliseconds(0)
        v = v.unwrap_or(filler)
    out[c.value] = East.DateTime.to_epoch_milliseconds(v) if c.kind == "DateTime" else v
    return out


def build(table_type: EastType, packed_columns: dict[str, Any]) -> EastValue:
    """The table (C-backed) from packed columns (numpy arrays, or lists)."""
    from east.types.values.collections import EastArray

    p = plan(table_type)
    return p.pack(EastArray.from_columns(p.packed, packed_columns))


def split(table_type: EastType, value: EastValue) -> dict[str, Any]:
    """Packed columns of a C-backed table (``to_columns`` of its packed rows)."""
    return dict(plan(table_type).unpack(value).to_columns())
