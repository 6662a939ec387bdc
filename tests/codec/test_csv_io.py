"""CSV as people write it: missing values, delimiters, headers, errors that say where."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from e3.codec import beast2, csv_io
from e3.codec.csv_infer import infer_csv_type
from e3.codec.csv_io import CsvOptions, read_csv, write_csv
from e3.codec.tabular import type_text
from e3.codec.types import (
    ArrayType,
    BlobType,
    BooleanType,
    DateTimeType,
    DictType,
    FloatType,
    IntegerType,
    NullType,
    OptionType,
    StringType,
    StructType,
    parse_type,
)
from e3.errors import DecodeError, TypeMismatch, UsageError

Penguin = ArrayType(
    StructType(
        [
            ("species", StringType),
            ("bill", OptionType(FloatType)),
            ("n", IntegerType),
            ("sex", OptionType(StringType)),
        ]
    )
)
HEAD = "species,bill,n,sex\n"


def rows(value) -> list[dict]:
    """Plain rows: Options as None or their value."""
    out = []
    for r in value:
        out.append(
            {
                k: (None if getattr(v, "type", None) == "none" else getattr(v, "value", v))
                if hasattr(v, "type") and v.type in ("none", "some")
                else v
                for k, v in r.items()
            }
        )
    return out


def read(text: str, t=Penguin, **options) -> list[dict]:
    return rows(read_csv(text.encode(), t, CsvOptions(**options), where="p.csv"))


def refused(text: str, t=Penguin, exc=DecodeError, **options) -> str:
    with pytest.raises(exc) as info:
        read_csv(text.encode(), t, CsvOptions(**options), where="p.csv")
    message = info.value.message
    assert "\n" not in message
    return message


def test_an_empty_cell_is_none_in_an_option_field_and_empty_text_in_a_string_field() -> None:
    got = read(HEAD + "A,1.5,1,m\n,,2,\n")
    assert got == [
        {"species": "A", "bill": 1.5, "n": 1, "sex": "m"},
        {"species": "", "bill": None, "n": 2, "sex": None},
    ]


def test_na_is_refused_by_default_with_the_cell_and_a_hint() -> None:
    message = refused(HEAD + "A,1.5,1,m\nB,NA,2,NA\n")
    assert message == (
        "p.csv: line 3, row 2, column 'bill' (Option<Float>): cannot read 'NA' as Float "
        "(if 'NA' marks a missing value, give --null-string NA)"
    )


def test_null_strings_add_missing_value_texts_for_option_fields_only() -> None:
    got = read(HEAD + "NA,NA,1,NaN\nB,null,2,x\n", null_strings=("NA", "NaN", "null"))
    # species is a String, not an Option: 'NA' there is the text NA
    assert got == [
        {"species": "NA", "bill": None, "n": 1, "sex": None},
        {"species": "B", "bill": None, "n": 2, "sex": "x"},
    ]


@pytest.mark.parametrize(
    ("cell", "options", "problem"),
    [
        ("", {}, "an empty cell is a missing value, but the field is not an Option"),
        (
            "NA",
            {"null_strings": ("NA",)},
            "'NA' is a missing value, but the field is not an Option",
        ),
        (
            "NA",
            {},
            "cannot read 'NA' as Integer (if 'NA' marks a missing value, give --null-string",
        ),
        ("1.5", {}, "cannot read '1.5' as Integer"),
    ],
)
def test_a_required_field_names_row_column_text_and_type(cell, options, problem) -> None:
    message = refused(HEAD + f"A,1,1,m\nB,2,{cell},f\n", **options)
    assert message.startswith("p.csv: line 3, row 2, column 'n' (Integer): ")
    assert problem in message
    assert "Struct" not in message and "Array" not in message


def test_lines_and_rows_count_quoted_newlines_and_blank_lines() -> None:
    message = refused(HEAD + '"A\nx",1.5,1,m\n\n"B",,q,\n')
    assert message.startswith("p.csv: line 5, row 2, column 'n' (Integer): cannot read 'q'")


def test_delimiter() -> None:
    got = read("species;bill;n;sex\nA;1.5;1;m\nB;;2;\n", delimiter=";")
    assert [r["bill"] for r in got] == [1.5, None]
    assert read("species\tbill\tn\tsex\nA\t\t3\tf\n", delimiter="\t")[0]["n"] == 3


def test_no_header_reads_the_fields_in_order() -> None:
    got = read("A,1.5,1,m\nB,,2,\n", header=False)
    assert got[1] == {"species": "B", "bill": None, "n": 2, "sex": None}
    message = refused("A,x,1,m\n", header=False)
    assert "column '#2' (Option<Float>)" in message


def test_columns_rename_headers_that_are_not_field_names() -> None:
    text = "Species Name,Bill (mm),n,sex\nA,1.5,1,m\n"
    got = read(text, columns={"Species Name": "species", "Bill (mm)": "bill"})
    assert got[0]["species"] == "A" and got[0]["bill"] == 1.5
    missing = refused(text)
    assert "no column for field(s) 'species', 'bill'" in missing and "--column" in missing
    message = refused(
        "Species Name,Bill (mm),n,sex\nA,x,1,m\n",
        columns={"Species Name": "species", "Bill (mm)": "bill"},
    )
    assert "column 'Bill (mm)' (Option<Float>)" in message  # the file's own name
    unknown = refused(text, exc=UsageError, columns={"Nope": "species"})
    assert "the header has no column 'Nope'" in unknown


def test_extra_columns_are_ignored_and_missing_option_columns_are_refused() -> None:
    assert read("x,species,bill,n,sex\n9,A,1,1,m\n")[0]["species"] == "A"
    assert "no column for field(s) 'sex'" in refused("species,bill,n\nA,1,1\n")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"delimiter": ";;"}, "--delimiter must be one character"),
        ({"delimiter": '"'}, "--delimiter must be one character"),
        ({"header": False, "columns": {"a": "b"}}, "cannot be used with --no-header"),
        ({"null_strings": ("a,b",)}, "--null-string 'a,b' cannot hold"),
    ],
)
def test_inconsistent_options_are_usage_errors(options, fragment) -> None:
    assert fragment in refused(HEAD, exc=UsageError, **options)


def test_a_field_a_cell_cannot_hold_is_refused_by_name() -> None:
    t = ArrayType(StructType([("a", IntegerType), ("d", DictType(StringType, IntegerType))]))
    message = refused("a,d\n1,x\n", t=t, exc=TypeMismatch)
    assert message == (
        "field 'd' is Dict<String, Integer>: a CSV cell holds Integer, Float, String, "
        "Boolean, DateTime, Blob, Null or an Option of one"
    )
    assert "needs an Array of Struct" in refused("1\n", t=IntegerType, exc=TypeMismatch)


def test_nul_bytes_and_bad_utf8_are_refused_with_their_offset() -> None:
    assert refused(HEAD + "A,1,1,m\0\n") == "p.csv: a NUL byte at offset 26 (not CSV text)"
    with pytest.raises(DecodeError, match=r"not UTF-8 text \(byte 19\)"):
        read_csv((HEAD + "\xff").encode("latin-1"), Penguin, where="p.csv")


def test_every_cell_type_with_missing_values_in_every_column() -> None:
    kinds = [
        ("i", IntegerType),
        ("f", FloatType),
        ("s", StringType),
        ("b", BooleanType),
        ("t", DateTimeType),
        ("x", BlobType),
    ]
    t = ArrayType(StructType([(n, OptionType(k)) for n, k in kinds]))
    text = "i,f,s,b,t,x\n1,2.5,a,true,2024-01-02T03:04:05.678,0x00ff\n,,,,,\nNA,NA,NA,NA,NA,NA\n"
    got = read(text, t=t, null_strings=("NA",))
    assert got[0] == {
        "i": 1,
        "f": 2.5,
        "s": "a",
        "b": True,
        "t": datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "x": b"\x00\xff",
    }
    assert len(got) == 2  # a line of empty cells is skipped, as east-py does
    assert all(v is None for v in got[1].values())


def test_chunks_cut_at_record_boundaries(monkeypatch) -> None:
    monkeypatch.setattr(csv_io, "CHUNK_BYTES", 16)
    body = "".join(f'"S{i}\n,""q""",{i}.5,{i},\n' for i in range(200))
    got = read(HEAD + body)
    assert len(got) == 200
    assert got[137] == {"species": 'S137\n,"q"', "bill": 137.5, "n": 137, "sex": None}
    message = refused(HEAD + body + '"late",1,oops,m\n')
    assert message.startswith("p.csv: line 402, row 201, column 'n' (Integer)")


def test_the_split_read_keeps_empty_strings_and_row_order(monkeypatch) -> None:
    monkeypatch.setattr(csv_io, "CHUNK_BYTES", 64)
    body = "".join(f"{'' if i % 3 else 'NA'},{'' if i % 2 else i},{i},\n" for i in range(50))
    got = read(HEAD + body, null_strings=("NA",))
    assert [r["n"] for r in got] == list(range(50))
    assert [r["species"] for r in got[:4]] == ["NA", "", "", "NA"]
    assert [r["bill"] for r in got[:3]] == [0.0, None, 2.0]


def test_the_result_is_one_canonical_value() -> None:
    text = HEAD + "A,1.5,1,m\nB,,2,\n"
    one = beast2.encode(read_csv(text.encode(), Penguin), Penguin)
    split = beast2.encode(read_csv(text.replace("B,", ",").encode(), Penguin), Penguin)
    py = beast2.encode(
        [
            {"species": "A", "bill": _some(1.5), "n": 1, "sex": _some("m")},
            {"species": "B", "bill": _none(), "n": 2, "sex": _none()},
        ],
        Penguin,
    )
    assert one == py and split != one


def _some(v):
    from e3.codec.types import some

    return some(v)


def _none():
    from e3.codec.types import none

    return none


def test_write_uses_the_first_null_string_and_the_header_names() -> None:
    value = read_csv(
        b"S,bill,n,sex\nA,1.5,1,m\nB,,2,\n", Penguin, CsvOptions(columns={"S": "species"})
    )
    out = write_csv(value, Penguin, CsvOptions(null_strings=("NA",), columns={"S": "species"}))
    assert out == b"S,bill,n,sex\nA,1.5,1,m\nB,NA,2,NA\n"
    plain = write_csv(value, Penguin, CsvOptions(delimiter=";", header=False))
    assert plain == b"A;1.5;1;m\nB;;2;\n"
    assert write_csv(read_csv(HEAD.encode(), Penguin), Penguin) == HEAD.encode()


def test_infer_type_from_cells() -> None:
    text = (
        "id,x,flag,when,name,maybe,gone\n"
        "1,1.5,true,2024-01-01T00:00:00.000,a,NA,\n"
        "2,2,false,2024-01-02T00:00:00Z,b,3,\n"
        "-3,NaN,true,2024-01-03T00:00:00,1,4,\n"
    )
    t = infer_csv_type(text.encode(), CsvOptions(null_strings=("NA",)))
    assert t == ArrayType(
        StructType(
            [
                ("id", IntegerType),
                ("x", FloatType),
                ("flag", BooleanType),
                ("when", DateTimeType),
                ("name", StringType),
                ("maybe", OptionType(IntegerType)),
                ("gone", OptionType(StringType)),
            ]
        )
    )
    assert parse_type(type_text(t)) == t  # what --infer-type prints reads back
    # the inferred type reads the same file
    assert len(read_csv(text.encode(), t, CsvOptions(null_strings=("NA",)))) == 3


def test_null_fields_read_empty_cells_beside_option_fields() -> None:
    t = ArrayType(StructType([("z", NullType), ("o", OptionType(IntegerType))]))
    got = read("z,o\n,1\n,NA\n", t=t, null_strings=("NA",))
    assert [r["o"] for r in got] == [1, None]


def test_infer_without_header_and_with_big_integers() -> None:
    t = infer_csv_type(b"1,99999999999999999999\n2,3\n", CsvOptions(header=False))
    assert t == ArrayType(StructType([("column1", IntegerType), ("column2", FloatType)]))


# ── east-py 1.0.97 misreads these cells silently; e3 refuses them ─────────────

When = ArrayType(
    StructType([("s", StringType), ("t", OptionType(DateTimeType)), ("n", IntegerType)])
)


@pytest.mark.parametrize(
    ("cell", "why"),
    [
        ("2024-01-01T10:00:00.1", "fewer than three digits (write .100, not .1)"),
        ("2024-01-01T10:00:00.25Z", "fewer than three digits"),
        ("2024-01-01T10:00:00+0200", "a zone offset without a colon (write +02:00"),
    ],
)
def test_datetimes_east_py_misreads_are_refused(cell, why) -> None:
    text = f"s,t,n\nok,2024-01-01T00:00:00.000,1\n{cell},{cell},2\n"
    message = refused(text, t=When)
    assert (
        message
        == f"p.csv: line 3, row 2, column 't' (Option<DateTime>): {cell!r} has "
        + (message.split(" has ", 1)[1])
    )
    assert why in message


def test_integers_beyond_64_bits_are_refused_and_text_is_not() -> None:
    big = "9223372036854775808"
    assert read(f"s,t,n\n{big},,{big[:-1]}7\n", t=When)[0]["s"] == big  # text, and the max
    message = refused(f"s,t,n\nx,,{big}\n", t=When)
    assert message == (
        f"p.csv: line 2, row 1, column 'n' (Integer): {big!r} is outside the 64-bit Integer range"
    )


def test_tripwire_east_py_still_misreads_these_cells() -> None:
    """When this fails, east-py reads them right: remove e3.codec.csv_guard."""
    from east.serialization.csv import decode_csv_for

    t = ArrayType(StructType([("t", DateTimeType), ("n", IntegerType)]))
    got = decode_csv_for(t)("t,n\n2024-01-01T10:00:00.1,9223372036854775808\n")[0]
    assert got["t"] == datetime(2024, 1, 1, 10, 0, 0, 1000, tzinfo=UTC)  # should be .100
    assert got["n"] == 2**63 - 1  # should be refused


def test_mangled_files_read_or_fail_with_one_line() -> None:
    """Seeded mutations of a CSV (quotes, CRs, delimiters, digits): a value or an E3Error."""
    import random

    from e3.codec.csv_infer import infer_csv_type
    from e3.errors import E3Error

    t = ArrayType(
        StructType(
            [
                ("s", StringType),
                ("f", OptionType(FloatType)),
                ("i", IntegerType),
                ("t", OptionType(DateTimeType)),
                ("x", OptionType(BlobType)),
            ]
        )
    )
    base = b's,f,i,t,x\nab,1.5,3,2024-01-01T00:00:00.000,0x00ff\n"q""x\n",,4,,\n'
    alphabet = b'",\n\r\\T:-.eE+0123456789NA \t;\xc3\xa9'
    rnd = random.Random(17)
    refused = 0
    for _ in range(400):
        d = bytearray(base)
        for _ in range(rnd.randint(1, 6)):
            pos = rnd.randrange(len(d) + 1)
            if rnd.random() < 0.6:
                d[pos:pos] = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12)))
            else:
                del d[pos : pos + rnd.randint(1, 4)]
        data = bytes(d)
        for attempt, arg in (
            (lambda b: read_csv(b, t, CsvOptions(null_strings=("NA",))), data),
            (infer_csv_type, data),
        ):
            try:
                attempt(arg)
            except E3Error as exc:
                message = exc.message
                refused += 1
            else:
                message = ""
            assert "\n" not in message
    assert refused > 100  # the mutations do break files
