"""Real data in and out through the CLI: CSV options, Parquet and Arrow, tables, type inference."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from east import ArrayType, East, FloatType, IntegerType, OptionType, StringType, StructType

import e3
from e3.codec.tabular import type_text
from e3.codec.types import parse_type
from tests_support import E3_BIN, run_cli, tree_digest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

Row = StructType(
    [
        ("name", StringType),
        ("score", OptionType(FloatType)),
        ("n", IntegerType),
        ("note", OptionType(StringType)),
    ]
)
Table = ArrayType(Row)
CSV = "name,score,n,note\nada,1.5,1,first\nbob,NA,2,NA\n,,3,\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with workspace ``ws`` whose input ``t`` is a table, copied by task ``copy``."""
    t = e3.input("t", Table)
    copy = e3.task("copy", [t], East.function([Table], Table, lambda b, v: v))
    zip_path = tmp_path / "tables.zip"
    e3.export(e3.package("tables", "1.0.0", copy), zip_path)
    root = tmp_path / "repo"
    for args in (
        ("repo", "create", root),
        ("package", "import", root, zip_path),
        ("workspace", "deploy", root, "ws", "tables"),
    ):
        assert run_cli(*args).code == 0
    return root


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_na_is_refused_in_one_line_and_the_repository_is_unchanged(repo, tmp_path) -> None:
    before = tree_digest(repo)
    r = run_cli("set", repo, "ws.inputs.t", write(tmp_path, "d.csv", CSV))
    assert r.code == 5
    assert r.err_lines == [
        f"Error: {tmp_path / 'd.csv'}: line 3, row 2, column 'score' (Option<Float>): cannot "
        "read 'NA' as Float (if 'NA' marks a missing value, give --null-string NA)"
    ]
    assert tree_digest(repo) == before


def test_null_string_sets_and_the_table_comes_back(repo, tmp_path) -> None:
    r = run_cli("set", repo, "ws.inputs.t", write(tmp_path, "d.csv", CSV), "--null-string", "NA")
    assert r.code == 0, r.err
    got = run_cli("get", repo, "ws.inputs.t", "-f", "csv", "--null-string", "NA")
    assert got.out == "name,score,n,note\nada,1.5,1,first\nbob,NA,2,NA\n,NA,3,NA\n"
    table = run_cli("get", repo, "ws.inputs.t", "-f", "table")
    assert table.out.splitlines() == [
        "name  score  n  note",
        "----  -----  -  -----",
        "ada     1.5  1  first",
        "bob          2",
        "             3",
        "(3 rows)",
    ]


def test_delimiter_no_header_and_column_options(repo, tmp_path) -> None:
    semi = write(tmp_path, "s.csv", "ada;2.5;1;x\nbob;;2;\n")
    r = run_cli("set", repo, "ws.inputs.t", semi, "--delimiter", ";", "--no-header")
    assert r.code == 0, r.err
    assert run_cli("get", repo, "ws.inputs.t", "-f", "csv").out.splitlines()[1:] == [
        "ada,2.5,1,x",
        "bob,,2,",
    ]
    odd = write(tmp_path, "o.csv", "Full Name,Score (pts),n,note\nada,1,1,\n")
    refused = run_cli("set", repo, "ws.inputs.t", odd)
    assert refused.code == 5 and "no column for field(s) 'name', 'score'" in refused.err
    ok = run_cli(
        "set",
        repo,
        "ws.inputs.t",
        odd,
        "--column",
        "Full Name=name",
        "--column",
        "Score (pts)=score",
    )
    assert ok.code == 0, ok.err
    tab = run_cli("get", repo, "ws.inputs.t", "-f", "csv", "--delimiter", "tab", "--no-header")
    assert tab.out == "ada\t1\t1\t\n"
    bad = run_cli("set", repo, "ws.inputs.t", odd, "--column", "nope")
    assert bad.code == 2 and bad.err_lines == ["Error: --column takes NAME=FIELD, got 'nope'"]


def parquet_table():
    return pa.table(
        {
            "name": pa.array(["ada", "bob", ""]),
            "score": pa.array([1.5, None, -0.25]),
            "n": pa.array([1, 2, 3]),
            "note": pa.array(["first", None, None]),
        }
    )


@pytest.mark.parametrize(("fmt", "ext"), [("parquet", ".parquet"), ("arrow", ".arrow")])
def test_parquet_and_arrow_set_and_get_round_trip(repo, tmp_path, fmt, ext) -> None:
    table = parquet_table()
    src = tmp_path / f"in{ext}"
    if fmt == "parquet":
        pq.write_table(table, src)
    else:
        with pa.ipc.new_file(src, table.schema) as w:
            w.write_table(table)
    assert run_cli("set", repo, "ws.inputs.t", src).code == 0
    out = tmp_path / f"out{ext}"
    r = run_cli("get", repo, "ws.inputs.t", "-o", out)  # the format from the extension
    assert r.code == 0, r.err
    back = pq.read_table(out) if fmt == "parquet" else pa.ipc.open_file(out).read_all()
    assert back.equals(table)


def test_parquet_and_csv_store_the_same_object(repo, tmp_path) -> None:
    csv = write(tmp_path, "d.csv", "name,score,n,note\nada,1.5,1,first\nbob,,2,\n")
    assert run_cli("set", repo, "ws.inputs.t", csv).code == 0
    from_csv = run_cli("status", repo, "ws.inputs.t").out
    table = pa.table(
        {"name": ["ada", "bob"], "score": [1.5, None], "n": [1, 2], "note": ["first", None]}
    )
    pq.write_table(table, tmp_path / "d.parquet")
    assert run_cli("set", repo, "ws.inputs.t", tmp_path / "d.parquet").code == 0
    assert run_cli("status", repo, "ws.inputs.t").out == from_csv


def test_unsupported_column_types_are_refused_by_name(repo, tmp_path) -> None:
    from decimal import Decimal

    table = pa.table({"name": ["a"], "score": pa.array([Decimal("1.5")]), "n": [1], "note": ["x"]})
    pq.write_table(table, tmp_path / "d.parquet")
    before = tree_digest(repo)
    r = run_cli("set", repo, "ws.inputs.t", tmp_path / "d.parquet")
    assert r.code == 5
    assert r.err_lines[0].startswith(
        f"Error: {tmp_path / 'd.parquet'}: column 'score' has Arrow type decimal128(2, 1)"
    )
    assert tree_digest(repo) == before


def test_convert_between_every_format(tmp_path) -> None:
    src = write(tmp_path, "d.csv", CSV)
    inferred = type_text(e3.type_from_file(src, null_strings=["NA"]))
    previous = src
    for name in ["d.parquet", "d.arrow", "d.json", "d.beast2", "d.east", "back.csv"]:
        typed = ["--type", inferred] if previous.suffix in (".json", ".east") else []
        r = run_cli("convert", previous, "-o", tmp_path / name, "--null-string", "NA", *typed)
        assert r.code == 0, (name, r.err)
        previous = tmp_path / name
    # the empty name is a missing value too: the inferred column is an Option
    assert (tmp_path / "back.csv").read_text() == (
        "name,score,n,note\nada,1.5,1,first\nbob,NA,2,NA\nNA,NA,3,NA\n"
    )
    table = run_cli("convert", tmp_path / "d.parquet", "--to", "table")
    assert table.out.splitlines()[-1] == "(3 rows)"


def test_infer_type_of_csv_and_parquet(tmp_path) -> None:
    src = write(tmp_path, "d.csv", CSV.replace(",,3,", "cy,,3,"))
    r = run_cli("convert", "--infer-type", src, "--null-string", "NA")
    assert r.code == 0, r.err
    assert parse_type(r.out) == Table
    assert e3.type_from_file(src, null_strings=["NA"]) == Table
    pq.write_table(parquet_table(), tmp_path / "d.parquet")
    r2 = run_cli("convert", "--infer-type", tmp_path / "d.parquet")
    assert parse_type(r2.out) == ArrayType(
        StructType(
            [
                ("name", StringType),
                ("score", OptionType(FloatType)),
                ("n", IntegerType),
                ("note", OptionType(StringType)),
            ]
        )
    )
    plain = run_cli("convert", "--infer-type", src)  # without NA: those columns are text
    score = '(name="score", type=.Variant [(name="none", type=.Null), (name="some", type=.String)])'
    assert score in plain.out


def test_beast2_from_file_feeds_dataset_set(repo, tmp_path) -> None:
    src = write(tmp_path, "d.csv", CSV)
    with e3.open(repo) as r:
        declared = r.dataset_status("ws", ["inputs", "t"]).type
        data = e3.beast2_from_file(src, declared, null_strings=["NA"])
        r.dataset_set("ws", ["inputs", "t"], data)
        _t, stored = r.dataset_get("ws", ["inputs", "t"])
    assert stored == data
    assert run_cli("get", repo, "ws.inputs.t", "-f", "csv").out.count("\n") == 4


def test_a_table_is_the_default_at_a_terminal(repo, tmp_path) -> None:
    run_cli("set", repo, "ws.inputs.t", write(tmp_path, "d.csv", CSV), "--null-string", "NA")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(E3_BIN), "get", str(repo), "ws.inputs.t"],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    assert text.splitlines()[0] == "name  score  n  note"
    assert text.splitlines()[-1] == "(3 rows)"
    piped = run_cli("get", repo, "ws.inputs.t")  # not a terminal: East text
    assert piped.out.startswith("[(name=")


def test_a_file_too_large_for_memory_is_refused_before_reading(repo, tmp_path) -> None:
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as f:
        f.truncate(1 << 40)  # sparse: 1 TiB that takes no disk
    before = tree_digest(repo)
    r = run_cli("set", repo, "ws.inputs.t", huge)
    assert r.code == 2
    assert len(r.err_lines) == 1
    assert r.err_lines[0].startswith(f"Error: {huge}: 1024.0 GiB of csv needs at least")
    assert "of memory to load, and this machine has" in r.err_lines[0]
    assert tree_digest(repo) == before


def test_get_set_and_help_do_not_import_pyarrow(repo, tmp_path) -> None:
    src = write(tmp_path, "d.csv", CSV)
    code = (
        "import sys\n"
        "from e3.cli import main\n"
        f"args = ['set', {str(repo)!r}, 'ws.inputs.t', {str(src)!r}, '--null-string', 'NA']\n"
        "assert main(args) == 0\n"
        f"assert main(['get', {str(repo)!r}, 'ws.inputs.t', '-f', 'table']) == 0\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'pyarrow' not in sys.modules and 'pandas' not in sys.modules, 'imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_json_output_of_a_table(repo, tmp_path) -> None:
    run_cli("set", repo, "ws.inputs.t", write(tmp_path, "d.csv", CSV), "--null-string", "NA")
    r = run_cli("get", repo, "ws.inputs.t", "--json")
    assert json.loads(r.out)["value"][1] == {"name": "bob", "score": None, "n": "2", "note": None}
