"""The terminal table of a value, and the refusal of inputs too large for memory."""

from __future__ import annotations

import pytest

from e3.codec import memory
from e3.codec.csv_io import CsvOptions, read_csv
from e3.codec.table_view import render_table
from e3.codec.types import (
    ArrayType,
    DateTimeType,
    FloatType,
    IntegerType,
    OptionType,
    StringType,
    StructType,
)
from e3.errors import RequestTooLarge, TypeMismatch

T = ArrayType(
    StructType(
        [
            ("name", StringType),
            ("x", OptionType(FloatType)),
            ("when", DateTimeType),
            ("n", IntegerType),
        ]
    )
)


def value(n: int):
    text = "name,x,when,n\n" + "".join(
        f"row {i},{'' if i % 2 else i / 4},2024-01-0{1 + i % 9}T00:00:00.250,{i}\n"
        for i in range(n)
    )
    return read_csv(text.encode(), T, CsvOptions())


def test_first_rows_aligned_with_a_count() -> None:
    text = render_table(value(30), T, rows=3)
    assert text.splitlines() == [
        "name   x    when                     n",
        "-----  ---  -----------------------  -",
        "row 0  0.0  2024-01-01T00:00:00.250  0",
        "row 1       2024-01-02T00:00:00.250  1",
        "row 2  0.5  2024-01-03T00:00:00.250  2",
        "(30 rows, first 3 shown)",
    ]


def test_wide_tables_lose_columns_with_a_marker_and_long_cells_are_cut() -> None:
    wide = ArrayType(StructType([(f"column_{i}", StringType) for i in range(12)]))
    text = "\n".join([",".join(f"column_{i}" for i in range(12)), ",".join(["x" * 40] * 12)])
    v = read_csv(text.encode(), wide)
    lines = render_table(v, wide, width=60).splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert lines[0].endswith("…") and lines[2].endswith("…")
    assert "x" * 23 + "…" in lines[2]
    assert lines[-1] == "(1 row, 10 more columns not shown)"


def test_only_tables_show_as_tables() -> None:
    with pytest.raises(TypeMismatch, match="a table view needs an Array of Struct"):
        render_table([1], ArrayType(IntegerType))


def test_an_empty_table() -> None:
    v = read_csv(b"name,x,when,n\n", T)
    assert render_table(v, T).splitlines()[-1] == "(0 rows)"


def test_refusal_compares_a_low_estimate_with_available_memory() -> None:
    memory.check_fits(1 << 20, "csv", "f.csv", available=1 << 30)  # fits: no error
    with pytest.raises(RequestTooLarge) as info:
        memory.check_fits(1 << 30, "parquet", "f.parquet", available=4 << 30)
    assert info.value.message == (
        "f.parquet: 1.0 GiB of parquet needs at least 16.0 GiB of memory to load, "
        "and this machine has 4.0 GiB available"
    )
    assert memory.available_memory() is None or memory.available_memory() > 0


def test_datetimes_show_without_a_zone() -> None:
    cell = render_table(value(1), T).splitlines()[2]
    assert "2024-01-01T00:00:00.250" in cell and "+00:00" not in cell
