"""examples/penguins.py on the real table, checked against Python's own ``csv`` module."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from tests_support import run_cli

pytest.importorskip("palmerpenguins")


def expected(path: str) -> dict[str, dict]:
    """Counts and means per species, missing values (NA) skipped, by the csv module."""
    groups: dict[str, dict] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            g = groups.setdefault(row["species"], {"penguins": 0, "bills": [], "masses": []})
            g["penguins"] += 1
            if row["bill_length_mm"] != "NA":
                g["bills"].append(float(row["bill_length_mm"]))
            if row["body_mass_g"] != "NA":
                g["masses"].append(float(row["body_mass_g"]))
    return {
        species: {
            "penguins": g["penguins"],
            "bill_measured": len(g["bills"]),
            "mean_bill_length_mm": sum(g["bills"]) / len(g["bills"]),
            "weighed": len(g["masses"]),
            "mean_body_mass_g": sum(g["masses"]) / len(g["masses"]),
        }
        for species, g in groups.items()
    }


@pytest.fixture
def penguins_csv() -> str:
    from importlib.resources import files

    return str(files("palmerpenguins") / "data" / "penguins.csv")


def test_grouped_counts_and_means_skip_missing_values(
    tmp_path: Path, build_example, penguins_csv: str
) -> None:
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    assert run_cli("package", "import", repo, build_example("penguins")).code == 0
    assert run_cli("workspace", "deploy", repo, "ws", "penguins").code == 0
    refused = run_cli("set", repo, "ws.inputs.penguins", penguins_csv)
    assert refused.code == 5 and "line 5, row 4, column 'bill_length_mm'" in refused.err
    ok = run_cli("set", repo, "ws.inputs.penguins", penguins_csv, "--null-string", "NA")
    assert ok.code == 0, ok.err
    assert run_cli("start", repo, "ws").code == 0
    got = json.loads(run_cli("get", repo, "ws.tasks.summary.output", "-f", "json").out)
    want = expected(penguins_csv)
    assert sorted(row["species"] for row in got) == sorted(want)
    for row in got:
        w = want[row["species"]]
        assert int(row["penguins"]) == w["penguins"]
        assert int(row["bill_measured"]) == w["bill_measured"]
        assert int(row["weighed"]) == w["weighed"]
        assert math.isclose(row["mean_bill_length_mm"], w["mean_bill_length_mm"], rel_tol=1e-12)
        assert math.isclose(row["mean_body_mass_g"], w["mean_body_mass_g"], rel_tol=1e-12)
    # the table really has missing values, and they were skipped
    assert sum(w["penguins"] - w["weighed"] for w in want.values()) == 2
