"""The baselines of the formats benchmark, run as their own processes.

``python -m benchmarks.formats_baseline read_csv|read_parquet|parquet_east FILE``

* ``read_csv`` / ``read_parquet``: pandas reading the file, nothing else.
* ``parquet_east``: pandas reading the Parquet file, then the plain east-py way of
  making that DataFrame an East value (numeric columns as numpy arrays, the
  others as Python lists, through ``EastArray.from_columns``) and encoding it as
  canonical Beast2 — what a user without e3's readers would write.
"""

from __future__ import annotations

import sys
from datetime import UTC

import numpy as np
import pandas as pd
from east import EastVariant
from east.serialization.beast2 import encode_beast2_with_header_for
from east.types.values.collections import EastArray

from benchmarks.formats import ROW_TYPE, TABLE_TYPE


def _east_columns(df: pd.DataFrame) -> dict[str, object]:
    none = EastVariant("none", None)

    def opt(values: list) -> list:
        return [none if v is None else EastVariant("some", v) for v in values]

    def py(series: pd.Series) -> list:
        return [None if pd.isna(v) else v for v in series.tolist()]

    ts = df["ts"].dt.tz_localize(UTC) if df["ts"].dt.tz is None else df["ts"]
    return {
        "id": df["id"].to_numpy(np.int64),
        "x": df["x"].to_numpy(np.float64),
        "y": df["y"].to_numpy(np.float64, na_value=np.nan),
        "name": df["name"].tolist(),
        "note": opt(py(df["note"])),
        "flag": df["flag"].to_numpy(np.bool_),
        "ts": list(ts.dt.to_pydatetime()),
        "k": opt([None if v is None else int(v) for v in py(df["k"])]),
    }


def main(argv: list[str]) -> int:
    what, path = argv
    if what == "read_csv":
        pd.read_csv(path)
    elif what == "read_parquet":
        pd.read_parquet(path)
    elif what == "parquet_east":
        df = pd.read_parquet(path)
        value = EastArray.from_columns(ROW_TYPE, _east_columns(df))
        encode_beast2_with_header_for(TABLE_TYPE, version=5)(value)
    else:
        raise SystemExit(f"unknown baseline {what!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
