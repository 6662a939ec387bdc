"""Parquet and Arrow IPC tables as East values (``Array`` of ``Struct``), both ways.

pyarrow is an optional dependency (``pip install 'e3-engine[arrow]'``) and is
imported here only, and only when a table is read or written, so ``e3 --help``
and ``e3 get`` never load it. Which Arrow type becomes which East type is
:mod:`e3.codec.arrow_types`.

Tables are read one record batch at a time: each batch's columns become an
East array through the packed columns of :mod:`e3.codec.columns` (numbers,
flags and DateTimes as numpy buffers, Options as a value and a presence
flag, turned into rows by a compiled East function), and the batches are
appended C-to-C. The Python objects of a batch are dropped before the next is
read, so what stays is the East value itself. Writing goes the other way, a
slice of rows at a time. A value read from Parquet is the same East value as
the same table read from CSV, so both are stored as the same canonical
Beast2 object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from east import EastVariant
from east.types.values.collections import EastArray

from e3.codec import columns
from e3.codec.arrow_types import arrow_type_of, east_type_of, schema_of, table_type
from e3.codec.tabular import describe, is_option, option_inner, rows
from e3.codec.types import EastType, EastValue, type_kind
from e3.errors import DecodeError, TypeMismatch, UsageError

#: Rows converted at a time, in both directions.
BATCH_ROWS = 65_536

_NONE = EastVariant("none", None)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HALF_MS = timedelta(microseconds=500)


def pyarrow() -> Any:
    """The ``pyarrow`` module, imported now.

    Raises:
        UsageError: pyarrow is not installed (the message says how to get it).
    """
    try:
        import pyarrow as pa
        import pyarrow.compute
    except ImportError as exc:
        raise UsageError("Parquet and Arrow need pyarrow: pip install 'e3-engine[arrow]'") from exc
    return pa


# ── reading ────────────────────────────────────────────────────────────────


def open_batches(source: Any, fmt: str, *, where: str) -> tuple[Any, Iterator[Any]]:
    """``(schema, record batches)`` of a Parquet or Arrow IPC file, path or bytes.

    Arrow IPC is read in its file form (``.arrow``, Feather v2) or stream form.

    Raises:
        DecodeError: not a readable file of that format.
    """
    pa = pyarrow()
    src = pa.BufferReader(source) if isinstance(source, bytes | bytearray | memoryview) else source
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(src)
            return pf.schema_arrow, pf.iter_batches(batch_size=BATCH_ROWS)
        try:
            reader = pa.ipc.open_file(src)
            return reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            if not isinstance(source, bytes | bytearray | memoryview):
                src = pa.memory_map(str(source))
            else:
                src = pa.BufferReader(source)
            stream = pa.ipc.open_stream(src)
            return stream.schema, iter(stream)
    except (pa.ArrowException, OSError) as exc:
        raise DecodeError(f"{where}: not a readable {_label(fmt)} file: {_line(exc)}") from exc


def read_table(
    source: Any,
    fmt: str,
    east_type: EastType | None,
    *,
    columns: Mapping[str, str] | None = None,
    where: str = "input",
) -> tuple[EastType, EastValue]:
    """Read a Parquet or Arrow IPC file as ``(type, C-backed Array<Struct> value)``.

    Without ``east_type`` the type is the table's (:func:`e3.codec.arrow_types.table_type`);
    with it, each field is taken from the column of its name (``columns`` renames
    column → field) and must fit: a null in a field that is not an Option, or a
    column whose Arrow type does not hold the field's type, is refused naming
    the column and row. Columns with no field are ignored.
    """
    pa = pyarrow()
    schema, batches = open_batches(source, fmt, where=where)
    if east_type is None:
        east_type = _infer(pa, schema, batches, columns or {}, where)
        schema, batches = open_batches(source, fmt, where=where)
    fields = _fields(east_type)
    names = _column_names(schema, fields, columns or {}, where)
    result: EastValue | None = None
    row0 = 0
    try:
        for batch in batches:
            part = _batch_value(pa, batch, east_type, names, row0, where)
            row0 += batch.num_rows
            if result is None:
                result = part
            else:
                result.extend(part)
    except (pa.ArrowException, OSError) as exc:
        raise DecodeError(f"{where}: cannot read the {_label(fmt)} file: {_line(exc)}") from exc
    if result is None:
        result = EastArray.from_columns(east_type.value, {n: [] for n, _ in fields})
    return east_type, result


def infer_type(source: Any, fmt: str, *, where: str = "input") -> EastType:
    """The East type of a Parquet or Arrow file's data (see :func:`read_table`)."""
    pa = pyarrow()
    schema, batches = open_batches(source, fmt, where=where)
    return _infer(pa, schema, batches, {}, where)


def _infer(
    pa: Any, schema: Any, batches: Iterable[Any], columns: Mapping[str, str], where: str
) -> EastType:
    try:
        table = pa.Table.from_batches(list(batches), schema=schema)
    except pa.ArrowException as exc:
        raise DecodeError(f"{where}: cannot read the table: {_line(exc)}") from exc
    if columns:
        table = table.rename_columns([columns.get(n, n) for n in table.column_names])
    try:
        return table_type(pa, table)
    except TypeMismatch as exc:
        raise TypeMismatch(f"{where}: {exc.message}") from exc


def _fields(east_type: EastType) -> list[tuple[str, EastType]]:
    if type_kind(east_type) != "Array" or type_kind(east_type.value) != "Struct":
        raise TypeMismatch(
            f"Parquet and Arrow hold tables: an Array of Struct, not {describe(east_type)}"
        )
    return [(str(f["name"]), f["type"]) for f in east_type.value.value]


def _column_names(
    schema: Any, fields: list[tuple[str, EastType]], columns: Mapping[str, str], where: str
) -> dict[str, str]:
    """Field → the column holding it."""
    present = list(schema.names)
    unknown = [c for c in columns if c not in present]
    if unknown:
        raise UsageError(f"--column {unknown[0]}=…: the table has no column {unknown[0]!r}")
    by_field = {columns.get(c, c): c for c in present}
    missing = [n for n, _ in fields if n not in by_field]
    if missing:
        shown = ", ".join(repr(c) for c in present[:8])
        raise DecodeError(
            f"{where}: no column for field(s) {', '.join(map(repr, missing))} (the table has "
            f"{shown}{' …' if len(present) > 8 else ''}; rename with --column NAME=FIELD)"
        )
    return {n: by_field[n] for n, _ in fields}


def _batch_value(
    pa: Any,
    batch: Any,
    table_type: EastType,
    names: dict[str, str],
    row0: int,
    where: str,
) -> EastValue:
    """One record batch as a C-backed table, through the packed columns of :mod:`columns`."""
    cols: dict[str, Any] = {}
    for c in columns.plan(table_type).columns:
        column = names[c.name]
        arr = batch.column(batch.schema.get_field_index(column))
        _packed_column(pa, arr, c, _Where(where, column, row0), cols)
    return columns.build(table_type, cols)


class _Where:
    """Where a column's cells come from, for messages."""

    def __init__(self, where: str, column: str, row0: int) -> None:
        self.where, self.column, self.row0 = where, column, row0

    def null(self, index: int, t: EastType) -> DecodeError:
        return DecodeError(
            f"{self.where}: row {self.row0 + index + 1}, column {self.column!r} is null, "
            f"but the field is {describe(t)}, not an Option"
        )

    def mismatch(self, arrow_type: Any, t: EastType) -> TypeMismatch:
        return TypeMismatch(
            f"{self.where}: column {self.column!r} has Arrow type {arrow_type}, "
            f"which does not hold the field's type {describe(t)}"
        )


def _packed_column(pa: Any, arr: Any, c: columns.Column, at: _Where, out: dict[str, Any]) -> None:
    """Put column ``c``'s packed value (and presence) columns into ``out``."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = c.type
    _check_kind(pa, arr.type, option_inner(t), at)
    if c.kind == "cell":
        out[c.value] = _nested(pa, arr, t, at)
        return
    if not c.optional and arr.null_count:
        raise at.null(_first_null(pa, arr), t)
    if c.kind == "DateTime":
        values = _millis(pa, arr, at, t)
    else:
        target = {"Integer": pa.int64(), "Float": pa.float64(), "Boolean": pa.bool_()}
        values = _cast(pa, arr, target.get(c.kind, pa.string()), at, t)
    if c.present is not None:
        out[c.present] = arr.is_valid().to_numpy(zero_copy_only=False)
        values = values.fill_null(columns.FILLERS[c.kind])
    if c.kind == "String":
        out[c.value] = values.to_pylist()
    else:
        out[c.value] = values.to_numpy(zero_copy_only=False)


def _millis(pa: Any, arr: Any, at: _Where, t: EastType) -> Any:
    """Epoch milliseconds (int64) of a timestamp or date column; finer parts refused."""
    if pa.types.is_date(arr.type):
        arr = arr.cast(pa.timestamp("ms"))
    return _cast(pa, arr, pa.timestamp("ms", tz=arr.type.tz), at, t).cast(pa.int64())


def _options(cells: list[Any]) -> list[Any]:
    """``none`` for ``None``, else ``some(v)``; one variant object per distinct hashable value."""
    memo: dict[Any, EastVariant] = {}
    out: list[Any] = []
    for v in cells:
        if v is None:
            out.append(_NONE)
            continue
        try:
            w = memo.get(v)
            if w is None:
                w = memo[v] = EastVariant("some", v)
        except TypeError:  # unhashable (a list, a dict): its own variant
            w = EastVariant("some", v)
        out.append(w)
    return out


def _first_null(pa: Any, arr: Any) -> int:
    return int(pa.compute.index(pa.compute.is_null(arr), True).as_py())


def _cast(pa: Any, arr: Any, target: Any, at: _Where, t: EastType) -> Any:
    try:
        return arr.cast(target)  # safe: overflow and lost precision raise
    except pa.ArrowInvalid as exc:
        raise DecodeError(
            f"{at.where}: column {at.column!r} ({arr.type}) does not fit {describe(t)}: "
            f"{_line(exc)}"
        ) from exc


def _check_kind(pa: Any, arrow_type: Any, t: EastType, at: _Where) -> None:
    """Refuse a column whose Arrow type cannot hold the field's East type."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    try:
        found = east_type_of(pa, arrow_type, at.column)
    except TypeMismatch as exc:
        raise TypeMismatch(f"{at.where}: {exc.message}") from exc
    kind, want = type_kind(found), type_kind(t)
    ok = kind == want or (want == "Float" and kind == "Integer") or want == "Null"
    if not ok:
        raise at.mismatch(arrow_type, t)


def _cells(pa: Any, arr: Any, t: EastType, at: _Where) -> list[Any]:
    """The cells of a column as Python values of East type ``t`` (``None`` for null)."""
    kind = type_kind(t)
    if kind == "Integer":
        return list(_cast(pa, arr, pa.int64(), at, t).to_pylist())
    if kind == "Float":
        return list(_cast(pa, arr, pa.float64(), at, t).to_pylist())
    if kind == "DateTime":
        return _datetimes(pa, arr, at, t)
    if kind == "Null":
        return [None] * len(arr)
    if kind == "Array":
        return _lists(pa, arr, t, at)
    if kind == "Struct":
        return _structs(pa, arr, t, at)
    return list(arr.to_pylist())  # String, Boolean, Blob


def _datetimes(pa: Any, arr: Any, at: _Where, t: EastType) -> list[Any]:
    """Exact milliseconds as datetimes east-py encodes exactly (mid-millisecond, see _datetimes)."""
    out: list[Any] = []
    for m in _millis(pa, arr, at, t).to_pylist():
        if m is None:
            out.append(None)
        else:
            out.append(_EPOCH + timedelta(milliseconds=m) + (_HALF_MS if m >= 0 else -_HALF_MS))
    return out


def _lists(pa: Any, arr: Any, t: EastType, at: _Where) -> list[Any]:
    elem = t.value
    flat = pa.compute.list_flatten(arr)
    lengths = pa.compute.list_value_length(arr).to_pylist()
    values = _nested(pa, flat, elem, _Where(at.where, f"{at.column}[]", at.row0))
    out: list[Any] = []
    pos = 0
    for n in lengths:
        if n is None:
            out.append(None)
        else:
            out.append(values[pos : pos + n])
            pos += n
    return out


def _structs(pa: Any, arr: Any, t: EastType, at: _Where) -> list[Any]:
    """Rows of a struct column; a child is read only where its parent is not null."""
    valid = arr.is_valid()
    rows = pa.compute.indices_nonzero(valid) if arr.null_count else None
    children = {}
    for f in t.value:
        name = str(f["name"])
        index = arr.type.get_field_index(name)
        if index < 0:
            raise DecodeError(f"{at.where}: column {at.column!r} has no struct field {name!r}")
        child = arr.field(index) if rows is None else arr.field(index).take(rows)
        place = _Where(at.where, f"{at.column}.{name}", at.row0)
        children[name] = _nested(pa, child, f["type"], place)
    present = [
        {name: values[i] for name, values in children.items()}
        for i in range(len(rows) if rows is not None else len(arr))
    ]
    if rows is None:
        return present
    out: list[Any] = [None] * len(arr)
    for slot, row in zip(rows.to_pylist(), present, strict=True):
        out[slot] = row
    return out


def _nested(pa: Any, arr: Any, t: EastType, at: _Where) -> list[Any]:
    """Cells of a nested column as East-ready values (variants for an Option)."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    inner = option_inner(t)
    _check_kind(pa, arr.type, inner, at)
    cells = _cells(pa, arr, inner, at)
    if is_option(t):
        return _options(cells)
    if arr.null_count and type_kind(t) != "Null":
        raise at.null(_first_null(pa, arr), t)
    return cells


# ── writing ────────────────────────────────────────────────────────────────


def write_table(value: EastValue, east_type: EastType, fmt: str, sink: Any) -> None:
    """Write an ``Array<Struct>`` value as Parquet or an Arrow IPC file, a slice at a time."""
    pa = pyarrow()
    schema = schema_of(pa, east_type)
    if not hasattr(value, "to_columns"):  # a Python list: make it C-backed, as decoded values are
        from e3.codec import beast2

        value = beast2.decode(beast2.encode(value, east_type), east_type, native=True)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        writer: Any = pq.ParquetWriter(sink, schema)
    else:
        writer = pa.ipc.new_file(sink, schema)
    with writer:
        for batch in value_batches(pa, value, east_type, schema):
            writer.write_batch(batch)


def value_batches(pa: Any, value: EastValue, table_type: EastType, schema: Any) -> Iterator[Any]:
    """Record batches of :data:`BATCH_ROWS` rows of a C-backed ``Array<Struct>`` value."""
    n = len(value)
    plan = columns.plan(table_type)
    for start in range(0, max(n, 1), BATCH_ROWS):
        part = rows(value, start, min(start + BATCH_ROWS, n)) if n else value
        cols = columns.split(table_type, part)
        arrays = [_arrow_column(pa, c, cols, schema.field(c.name).type) for c in plan.columns]
        yield pa.record_batch(arrays, schema=schema)


def _arrow_column(pa: Any, c: columns.Column, cols: dict[str, Any], arrow_type: Any) -> Any:
    col = cols[c.value]
    if c.kind == "cell":
        plain = _plain(c.type)
        return pa.array(col if plain is None else [plain(v) for v in col], type=arrow_type)
    mask = None if c.present is None else ~cols[c.present]
    if c.kind == "DateTime":
        return pa.array(col, type=pa.int64(), mask=mask).cast(arrow_type)
    return pa.array(col, type=arrow_type, mask=mask)


def _plain(t: EastType) -> Callable[[Any], Any] | None:
    """How an East value of ``t`` becomes what pyarrow builds from (``None``: as it is).

    Decided once per column, not per cell.
    """
    kind = type_kind(t)
    if is_option(t):
        inner = _plain(option_inner(t))
        if inner is None:
            return lambda v: None if v.type == "none" else v.value
        return lambda v: None if v.type == "none" else inner(v.value)
    if kind == "Array":
        elem = _plain(t.value)
        if elem is None:
            return list
        return lambda v: [elem(x) for x in v]
    if kind == "Struct":
        fields = [(str(f["name"]), _plain(f["type"])) for f in t.value]
        return lambda v: {n: (v[n] if c is None else c(v[n])) for n, c in fields}
    if kind == "Null":
        return lambda v: None
    return None


def _label(fmt: str) -> str:
    return "Parquet" if fmt == "parquet" else "Arrow IPC"


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["BATCH_ROWS", "arrow_type_of", "infer_type", "pyarrow", "read_table", "write_table"]
