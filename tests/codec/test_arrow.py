"""Parquet and Arrow tables ↔ East values: every Arrow type e3 reads, refusals, round trips."""

from __future__ import annotations

import io
import math
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from e3.codec import arrow, beast2  # noqa: E402
from e3.codec.csv_io import CsvOptions, read_csv  # noqa: E402
from e3.codec.types import (  # noqa: E402
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
)
from e3.errors import DecodeError, TypeMismatch  # noqa: E402

T0 = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def parquet(table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def ipc(table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def one_column(arr) -> tuple[EastType, list]:
    """(the column's East type, its cells) after reading a one-column Parquet table."""
    t, value = arrow.read_table(parquet(pa.table({"c": arr})), "parquet", None)
    return t.value.value[0]["type"], [row["c"] for row in value]


# (Arrow array, East type, first cell as East reads it)
TYPE_TABLE = [
    (pa.array([-5], pa.int8()), IntegerType, -5),
    (pa.array([-5], pa.int16()), IntegerType, -5),
    (pa.array([-5], pa.int32()), IntegerType, -5),
    (pa.array([-(2**63)], pa.int64()), IntegerType, -(2**63)),
    (pa.array([255], pa.uint8()), IntegerType, 255),
    (pa.array([65535], pa.uint16()), IntegerType, 65535),
    (pa.array([2**32 - 1], pa.uint32()), IntegerType, 2**32 - 1),
    (pa.array([2**63 - 1], pa.uint64()), IntegerType, 2**63 - 1),
    (pa.array([1.5], pa.float16()), FloatType, 1.5),
    (pa.array([0.1], pa.float32()), FloatType, float(pa.array([0.1], pa.float32())[0].as_py())),
    (pa.array([0.1]), FloatType, 0.1),
    (pa.array(["é"]), StringType, "é"),
    (pa.array(["é"], pa.large_string()), StringType, "é"),
    (pa.array([True]), BooleanType, True),
    (pa.array([T0], pa.timestamp("ms")), DateTimeType, T0),
    (pa.array([T0], pa.timestamp("us")), DateTimeType, T0),
    (pa.array([T0], pa.timestamp("ns", tz="Europe/Paris")), DateTimeType, T0),
    (pa.array([T0], pa.timestamp("s")), DateTimeType, T0.replace(microsecond=0)),
    (pa.array([date(2000, 2, 29)], pa.date32()), DateTimeType, datetime(2000, 2, 29, tzinfo=UTC)),
    (pa.array([date(1969, 12, 31)], pa.date64()), DateTimeType, datetime(1969, 12, 31, tzinfo=UTC)),
    (pa.array([b"\x00\xff"]), BlobType, b"\x00\xff"),
    (pa.array([b"\x00\xff"], pa.large_binary()), BlobType, b"\x00\xff"),
    (pa.array([b"ab"], pa.binary(2)), BlobType, b"ab"),
    (pa.nulls(1), NullType, None),
    (pa.array([[1, 2]], pa.list_(pa.int64())), ArrayType(IntegerType), [1, 2]),
    (pa.array([[1, 2]], pa.large_list(pa.int32())), ArrayType(IntegerType), [1, 2]),
    (pa.array([[1, 2]], pa.list_(pa.int64(), 2)), ArrayType(IntegerType), [1, 2]),
    (
        pa.array([{"x": 1, "y": "a"}], pa.struct([("x", pa.int64()), ("y", pa.string())])),
        StructType([("x", IntegerType), ("y", StringType)]),
        {"x": 1, "y": "a"},
    ),
    (pa.array(["a"]).dictionary_encode(), StringType, "a"),
    (pa.array([7]).dictionary_encode(), IntegerType, 7),
]


@pytest.mark.parametrize(
    ("arr", "east", "first"), TYPE_TABLE, ids=lambda x: str(getattr(x, "type", ""))
)
def test_each_arrow_type_reads_as_its_east_type(arr, east, first) -> None:
    t, cells = one_column(arr)
    assert t == east
    got = cells[0]
    if east.type == "Array":
        got = list(got)
    elif east.type == "Struct":
        got = dict(got)
    elif east.type == "Null":
        got = None
    assert got == first


@pytest.mark.parametrize(
    ("arr", "east", "first"),
    [case for case in TYPE_TABLE if case[1] is not NullType],
    ids=lambda x: str(getattr(x, "type", "")),
)
def test_a_column_with_nulls_is_an_option(arr, east, first) -> None:
    with_null = pa.concat_arrays([arr, pa.nulls(1, arr.type)])
    t, cells = one_column(with_null)
    assert t == OptionType(east)
    assert cells[0].type == "some" and cells[1].type == "none"


def test_nested_nulls_are_options_inside() -> None:
    arr = pa.array([[1, None]], pa.list_(pa.int64()))
    t, cells = one_column(arr)
    assert t == ArrayType(OptionType(IntegerType))
    assert [c.type for c in cells[0]] == ["some", "none"]


@pytest.mark.parametrize(
    ("arr", "arrow_text"),
    [
        (pa.array([Decimal("1.50")], pa.decimal128(5, 2)), "decimal128(5, 2)"),
        (pa.array([1], pa.time32("ms")), "time32[ms]"),
        (pa.array([1], pa.duration("s")), "duration[s]"),
        (pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())), "map<string, int64"),
    ],
)
def test_other_arrow_types_are_refused_naming_the_column(arr, arrow_text) -> None:
    with pytest.raises(TypeMismatch) as info:
        one_column(arr)
    message = info.value.message
    assert message.startswith(f"input: column 'c' has Arrow type {arrow_text}")
    assert ", which e3 does not read (it reads integers, floats" in message


def test_a_union_column_is_refused() -> None:
    arr = pa.UnionArray.from_sparse(pa.array([0], pa.int8()), [pa.array([1]), pa.array(["a"])])
    with pytest.raises(TypeMismatch, match="column 'c' has Arrow type sparse_union"):
        arrow.read_table(ipc(pa.table({"c": arr})), "arrow", None)


def test_values_that_do_not_fit_are_refused_with_the_column() -> None:
    with pytest.raises(DecodeError, match=r"column 'c' \(uint64\) does not fit Integer"):
        one_column(pa.array([2**64 - 1], pa.uint64()))
    with pytest.raises(DecodeError, match=r"column 'c' \(timestamp\[us\]\) does not fit DateTime"):
        one_column(pa.array([1], pa.timestamp("us")))


Row = StructType([("id", IntegerType), ("x", OptionType(FloatType)), ("s", StringType)])


def test_a_declared_type_checks_nulls_kinds_and_names() -> None:
    data = parquet(pa.table({"id": [1, None], "x": [1.0, None], "s": ["a", "b"], "extra": [0, 0]}))
    with pytest.raises(DecodeError) as info:
        arrow.read_table(data, "parquet", ArrayType(Row), where="t.parquet")
    assert info.value.message == (
        "t.parquet: row 2, column 'id' is null, but the field is Integer, not an Option"
    )
    bad_kind = parquet(pa.table({"id": ["1"], "x": [1.0], "s": ["a"]}))
    with pytest.raises(TypeMismatch, match="column 'id' has Arrow type string, which does not"):
        arrow.read_table(bad_kind, "parquet", ArrayType(Row))
    missing = parquet(pa.table({"id": [1], "x": [1.0]}))
    with pytest.raises(DecodeError, match=r"no column for field\(s\) 's'"):
        arrow.read_table(missing, "parquet", ArrayType(Row))
    renamed = parquet(pa.table({"ID": [1], "x": [2], "s": ["a"]}))
    _t, v = arrow.read_table(renamed, "parquet", ArrayType(Row), columns={"ID": "id"})
    assert v[0]["id"] == 1 and v[0]["x"].value == 2.0  # an integer column fills a Float


def test_nan_and_null_stay_apart_both_ways() -> None:
    table = pa.table({"x": pa.array([1.0, math.nan, None])})
    t, v = arrow.read_table(parquet(table), "parquet", None)
    assert [c["x"].type for c in v] == ["some", "some", "none"]
    sink = io.BytesIO()
    arrow.write_table(v, t, "parquet", sink)
    back = pq.read_table(io.BytesIO(sink.getvalue())).column("x").to_pylist()
    assert back[0] == 1.0 and math.isnan(back[1]) and back[2] is None


def full_table(n: int = 7):
    """Every column type e3 writes, with a null in every column."""
    rows = range(n)

    def holes(values):
        return [None if i % 3 == 1 else v for i, v in zip(rows, values, strict=True)]

    return pa.table(
        {
            "i": pa.array(holes(list(rows)), pa.int64()),
            "f": pa.array(holes([i / 3 for i in rows]), pa.float64()),
            "s": pa.array(holes([f's{i},\n"q"' for i in rows]), pa.string()),
            "b": pa.array(holes([i % 2 == 0 for i in rows]), pa.bool_()),
            "t": pa.array(
                holes([datetime(1950 + i, 1, 1, 0, 0, 0, i * 1000) for i in rows]),
                pa.timestamp("ms"),
            ),
            "x": pa.array(holes([bytes([i]) for i in rows]), pa.binary()),
            "l": pa.array(holes([[i, None] for i in rows]), pa.list_(pa.int64())),
            "st": pa.array(
                holes([{"a": i, "b": None} for i in rows]),
                pa.struct([("a", pa.int64()), ("b", pa.string())]),
            ),
        }
    )


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_tables_round_trip_through_e3_unchanged(fmt) -> None:
    table = full_table()
    data = parquet(table) if fmt == "parquet" else ipc(table)
    t, v = arrow.read_table(data, fmt, None)
    stored = beast2.encode(v, t)  # what a repository keeps
    sink = io.BytesIO()
    arrow.write_table(beast2.decode(stored, t), t, fmt, sink)
    back = (
        pq.read_table(io.BytesIO(sink.getvalue()))
        if fmt == "parquet"
        else pa.ipc.open_file(io.BytesIO(sink.getvalue())).read_all()
    )
    assert back.equals(table)


def test_batches_are_joined_in_order(monkeypatch) -> None:
    monkeypatch.setattr(arrow, "BATCH_ROWS", 3)
    table = full_table(20)
    t, v = arrow.read_table(parquet(table), "parquet", None)
    assert [r["i"].value if r["i"].type == "some" else None for r in v] == table.column(
        "i"
    ).to_pylist()
    sink = io.BytesIO()
    arrow.write_table(v, t, "parquet", sink)
    assert pq.read_table(io.BytesIO(sink.getvalue())).equals(table)


def test_parquet_and_csv_with_missing_values_store_the_same_object() -> None:
    kinds = [
        ("i", IntegerType, pa.int64()),
        ("f", FloatType, pa.float64()),
        ("s", StringType, pa.string()),
        ("b", BooleanType, pa.bool_()),
        ("t", DateTimeType, pa.timestamp("ms")),
    ]
    t = ArrayType(StructType([(n, OptionType(k)) for n, k, _ in kinds]))
    csv_text = (
        "i,f,s,b,t\n"
        "1,2.5,a,true,2024-01-02T03:04:05.678\n"
        "NA,NA,NA,NA,NA\n"
        "-7,,b,,1969-12-31T23:59:59.999\n"
        ",1e-300,,false,\n"
    )
    from_csv = beast2.encode(read_csv(csv_text.encode(), t, CsvOptions(null_strings=("NA",))), t)
    table = pa.table(
        {
            "i": pa.array([1, None, -7, None], pa.int64()),
            "f": pa.array([2.5, None, None, 1e-300]),
            "s": pa.array(["a", None, "b", None]),
            "b": pa.array([True, None, None, False]),
            "t": pa.array(
                [T0, None, datetime(1969, 12, 31, 23, 59, 59, 999000), None], pa.timestamp("ms")
            ),
        }
    )
    _, value = arrow.read_table(parquet(table), "parquet", t)
    assert beast2.encode(value, t) == from_csv
    inferred, value2 = arrow.read_table(parquet(table), "parquet", None)
    assert inferred == t and beast2.encode(value2, t) == from_csv


def test_only_tables_are_written() -> None:
    with pytest.raises(TypeMismatch, match="Parquet and Arrow hold tables"):
        arrow.write_table([1], ArrayType(IntegerType), "parquet", io.BytesIO())
    from e3.codec.types import DictType

    t = ArrayType(StructType([("d", DictType(StringType, IntegerType))]))
    with pytest.raises(
        TypeMismatch, match="field 'd' is Dict<String, Integer>, which has no Arrow"
    ):
        arrow.write_table([], t, "parquet", io.BytesIO())


def test_not_a_parquet_file() -> None:
    with pytest.raises(DecodeError, match="not a readable Parquet file"):
        arrow.read_table(b"PAR1 but not really", "parquet", None, where="x.parquet")
    with pytest.raises(DecodeError, match="not a readable Arrow IPC file"):
        arrow.read_table(b"nope", "arrow", None, where="x.arrow")
