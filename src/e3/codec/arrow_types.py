"""Arrow column types ↔ East types (pyarrow is imported by the caller, lazily).

| Arrow                                   | East                          |
| --------------------------------------- | ----------------------------- |
| int8…int64, uint8…uint64                | Integer (uint64 > 2^63-1 refused) |
| float16, float32, float64               | Float                         |
| string, large_string, string_view       | String                        |
| bool                                    | Boolean                       |
| timestamp (any unit, any zone), date32/64 | DateTime (UTC milliseconds; finer parts refused) |
| binary, large_binary, fixed_size_binary | Blob                          |
| null                                    | Null                          |
| list, large_list, fixed_size_list       | Array                         |
| struct                                  | Struct                        |
| dictionary                              | its value type (a dictionary of strings is a String) |
| a column or child holding nulls         | Option of the above           |

Anything else (decimals, times, durations, maps, unions…) is refused with the
column's name and its Arrow type. Going back, East types map to the first
Arrow type of their row, DateTime to ``timestamp[ms]`` without a zone, and
every field is nullable (Arrow's default), so a table that went through e3
equals the one that came in.
"""

from __future__ import annotations

from typing import Any

from e3.codec.tabular import describe, is_option, option_inner
from e3.codec.types import (
    ArrayType,
    BlobType,
    BooleanType,
    DateTimeType,
    EastType,
    FloatType,
    IntegerType,
    NullType,
    OptionType,
    StringType,
    StructType,
    type_kind,
)
from e3.errors import TypeMismatch

#: What the refusal message lists.
READABLE = (
    "integers, floats, strings, booleans, timestamps, dates, binary, lists, structs "
    "and dictionaries"
)


def east_type_of(pa: Any, arrow_type: Any, column: str, nullable: bool = False) -> EastType:
    """The East type of an Arrow column (``Option`` when ``nullable``).

    Raises:
        TypeMismatch: an Arrow type e3 does not read, naming the column.
    """
    t = pa.types
    if t.is_dictionary(arrow_type):
        inner = east_type_of(pa, arrow_type.value_type, column)
    elif t.is_integer(arrow_type):
        inner = IntegerType
    elif t.is_floating(arrow_type):
        inner = FloatType
    elif (
        t.is_string(arrow_type)
        or t.is_large_string(arrow_type)
        or _is(t, "string_view", arrow_type)
    ):
        inner = StringType
    elif t.is_boolean(arrow_type):
        inner = BooleanType
    elif t.is_timestamp(arrow_type) or t.is_date(arrow_type):
        inner = DateTimeType
    elif (
        t.is_binary(arrow_type)
        or t.is_large_binary(arrow_type)
        or t.is_fixed_size_binary(arrow_type)
    ):
        inner = BlobType
    elif t.is_null(arrow_type):
        return NullType
    elif t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        item = arrow_type.value_field
        inner = ArrayType(east_type_of(pa, item.type, f"{column}[]", item.nullable))
    elif t.is_struct(arrow_type):
        inner = StructType(
            [
                (f.name, east_type_of(pa, f.type, f"{column}.{f.name}", f.nullable))
                for f in arrow_type
            ]
        )
    else:
        raise TypeMismatch(
            f"column {column!r} has Arrow type {arrow_type}, which e3 does not read "
            f"(it reads {READABLE})"
        )
    return OptionType(inner) if nullable else inner


def _is(t: Any, name: str, arrow_type: Any) -> bool:
    check = getattr(t, f"is_{name}", None)
    return bool(check(arrow_type)) if check is not None else False


def arrow_type_of(pa: Any, east_type: EastType, field: str) -> Any:
    """The Arrow type e3 writes for an East type (an Option is its inner type, nullable).

    Raises:
        TypeMismatch: an East type with no Arrow column type (Dict, Set, Variant…).
    """
    kind = type_kind(east_type)
    if is_option(east_type):
        return arrow_type_of(pa, option_inner(east_type), field)
    simple = {
        "Integer": pa.int64(),
        "Float": pa.float64(),
        "String": pa.string(),
        "Boolean": pa.bool_(),
        "DateTime": pa.timestamp("ms"),
        "Blob": pa.binary(),
        "Null": pa.null(),
    }
    if kind in simple:
        return simple[kind]
    if kind == "Array":
        return pa.list_(arrow_type_of(pa, east_type.value, f"{field}[]"))
    if kind == "Struct":
        return pa.struct(
            [
                pa.field(str(f["name"]), arrow_type_of(pa, f["type"], f"{field}.{f['name']}"))
                for f in east_type.value
            ]
        )
    raise TypeMismatch(
        f"field {field!r} is {describe(east_type)}, which has no Arrow column type "
        "(Arrow and Parquet hold Integer, Float, String, Boolean, DateTime, Blob, Null, "
        "Option, Array and Struct)"
    )


def schema_of(pa: Any, east_type: EastType) -> Any:
    """The Arrow schema e3 writes an ``Array<Struct>`` as."""
    if type_kind(east_type) != "Array" or type_kind(east_type.value) != "Struct":
        raise TypeMismatch(
            f"Parquet and Arrow hold tables: an Array of Struct, not {describe(east_type)}"
        )
    return pa.schema(
        [
            pa.field(str(f["name"]), arrow_type_of(pa, f["type"], str(f["name"])))
            for f in east_type.value.value
        ]
    )


def infer_column(pa: Any, column: Any, name: str) -> EastType:
    """The East type of a column's data: Option wherever nulls occur, at any depth.

    ``column`` is an Arrow array or chunked array. A struct's children are looked
    at only in its rows that are not null.
    """
    t = pa.types
    arrow_type = column.type
    nullable = column.null_count > 0
    if t.is_dictionary(arrow_type):
        inner = east_type_of(pa, arrow_type.value_type, name)
    elif t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        import pyarrow.compute as pc

        flat = pc.list_flatten(column)
        inner = ArrayType(infer_column(pa, flat, f"{name}[]"))
    elif t.is_struct(arrow_type):
        chunks = column.chunks if hasattr(column, "chunks") else [column]
        fields = []
        for i, f in enumerate(arrow_type):
            child = pa.chunked_array([c.field(i).filter(c.is_valid()) for c in chunks], type=f.type)
            fields.append((f.name, infer_column(pa, child, f"{name}.{f.name}")))
        inner = StructType(fields)
    elif t.is_null(arrow_type):
        return NullType
    else:
        inner = east_type_of(pa, arrow_type, name)
    return OptionType(inner) if nullable else inner


def table_type(pa: Any, table: Any) -> EastType:
    """``Array<Struct>`` of a table, each column typed by :func:`infer_column`."""
    return ArrayType(
        StructType([(f.name, infer_column(pa, table.column(f.name), f.name)) for f in table.schema])
    )
