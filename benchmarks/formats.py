"""Setting and getting a 1,000,000-row, 8-column table via CSV, Parquet and Beast2.

``--sizes N`` sets the number of rows (14000000 makes a 1.1 GB CSV).

Each figure is one whole process (``e3 set``/``e3 get`` as a user runs it, or a
pandas baseline), with its wall time and its peak resident memory (from
``wait4``). Goals: ``e3 set`` of Parquet within 2x of pandas reading the same
file plus east-py encoding it (``benchmarks.formats_baseline parquet_east``);
peak memory against the size of the canonical Beast2 object.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from east import (
    ArrayType,
    BooleanType,
    DateTimeType,
    FloatType,
    IntegerType,
    OptionType,
    StringType,
    StructType,
)

from benchmarks.harness import E3, env, table

ROW_TYPE = StructType(
    [
        ("id", IntegerType),
        ("x", FloatType),
        ("y", OptionType(FloatType)),
        ("name", StringType),
        ("note", OptionType(StringType)),
        ("flag", BooleanType),
        ("ts", DateTimeType),
        ("k", OptionType(IntegerType)),
    ]
)
TABLE_TYPE = ArrayType(ROW_TYPE)


#: Runs a command and prints its wall time and peak RSS. A fresh, small process
#: starts it: a forked child's peak RSS counts the pages it shared with its parent
#: before exec, so spawning from this (large) process would inflate every figure.
_WRAPPER = """
import os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), time.perf_counter() - t0, usage.ru_maxrss * 1024)
"""


def measure(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes of one process."""
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *argv], env=env(), capture_output=True, check=False
    )
    code, secs, peak = proc.stdout.split()
    if int(code) != 0:
        err = proc.stderr.decode(errors="replace")
        raise RuntimeError(f"{' '.join(argv)} failed ({int(code)}): {err[-2000:]}")
    return float(secs), int(peak)


def make_table(rows: int):
    """The benchmark table (deterministic), with missing values in its Option columns."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(17)
    idx = np.arange(rows)
    words = np.array(["alpha", "beta", "gamma", "delta", "epsilon"])
    notes = pa.array([f"note {i % 1000}" for i in range(rows)], mask=idx % 5 == 0)
    return pa.table(
        {
            "id": pa.array(idx, pa.int64()),
            "x": pa.array(rng.random(rows)),
            "y": pa.array(np.round(rng.random(rows) * 100, 4), mask=idx % 7 == 0),
            "name": pa.array(words[idx % 5]),
            "note": notes,
            "flag": pa.array(idx % 2 == 1),
            "ts": pa.array(idx * 1000 + 1_704_067_200_000, pa.timestamp("ms")),
            "k": pa.array(idx % 97, mask=idx % 3 == 0),
        }
    )


def _files(tmp: Path, rows: int) -> dict[str, Path]:
    import pyarrow.parquet as pq

    from e3.codec import beast2
    from e3.codec.arrow import read_table
    from e3.codec.csv_io import write_csv

    files = {"parquet": tmp / "t.parquet", "csv": tmp / "t.csv", "beast2": tmp / "t.beast2"}
    pq.write_table(make_table(rows), files["parquet"])
    t, value = read_table(str(files["parquet"]), "parquet", TABLE_TYPE)
    files["csv"].write_bytes(write_csv(value, t))
    files["beast2"].write_bytes(beast2.encode(value, t))
    return files


def _repo(tmp: Path) -> Path:
    from east import East

    import e3

    t = e3.input("t", TABLE_TYPE)
    copy = e3.task("copy", [t], East.function([TABLE_TYPE], TABLE_TYPE, lambda b, v: v))
    e3.export(e3.package("tables", "1.0.0", copy), tmp / "tables.zip")
    repo = tmp / "repo"
    for args in (
        ["repo", "create", str(repo)],
        ["package", "import", str(repo), str(tmp / "tables.zip")],
        ["workspace", "deploy", str(repo), "ws", "tables"],
    ):
        measure([E3, *args])
    return repo


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def run(*, quick: bool, sizes: str | None = None) -> None:
    rows = int(sizes.split(",")[0]) if sizes else 20_000 if quick else 1_000_000
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        files = _files(tmp, rows)
        repo = _repo(tmp)
        stored = files["beast2"].stat().st_size
        results: list[tuple[str, float, int]] = []
        for fmt in ("csv", "parquet", "beast2"):
            results.append(
                (
                    f"e3 set ({fmt})",
                    *measure([E3, "set", str(repo), "ws.inputs.t", str(files[fmt])]),
                )
            )
        for fmt in ("csv", "parquet", "beast2"):
            out = tmp / f"out.{fmt}"
            results.append(
                (
                    f"e3 get -f {fmt} -o",
                    *measure([E3, "get", str(repo), "ws.inputs.t", "-o", str(out)]),
                )
            )
        base = [py, "-m", "benchmarks.formats_baseline"]
        results.append(("pandas.read_csv", *measure([*base, "read_csv", str(files["csv"])])))
        results.append(
            ("pandas.read_parquet", *measure([*base, "read_parquet", str(files["parquet"])]))
        )
        results.append(
            (
                "read_parquet + East encoding",
                *measure([*base, "parquet_east", str(files["parquet"])]),
            )
        )
        baseline = results[-1][1]
        print(
            f"{rows:,} rows x 8 columns; files: CSV {_mb(files['csv'].stat().st_size)}, "
            f"Parquet {_mb(files['parquet'].stat().st_size)}, Beast2 (stored) {_mb(stored)}\n"
        )
        table(
            ["process", "time", "peak RSS", "peak / Beast2 size", "time / (read_parquet + East)"],
            [
                [
                    name,
                    f"{secs:.2f} s",
                    _mb(peak),
                    f"{peak / stored:.1f}x",
                    f"{secs / baseline:.2f}",
                ]
                for name, secs, peak in results
            ],
        )
        set_parquet = results[1][1]
        print(
            f"\nParquet set / (pandas.read_parquet + East encoding) = {set_parquet / baseline:.2f} "
            "(goal ≤ 2)"
        )
