"""Real data: the Palmer penguins, with missing values written ``NA``.

The table (344 penguins measured near Palmer Station, Antarctica; Gorman,
Williams and Fraser 2014, via Horst, Hill and Gorman's ``palmerpenguins``)
ships inside the ``palmerpenguins`` PyPI package, which this example reads it
from; it is not copied here. Eleven measurements are ``NA``.

The input's type is declared from the file itself (``e3.type_from_file``), so
the columns with missing values are Options. ``summary`` counts the penguins
of each species and averages their bill length and body mass, skipping the
missing values; a mean over no values is ``none``. Run it with::

    e3 package build examples/penguins.py -o penguins.zip
    e3 package import repo penguins.zip && e3 workspace deploy repo ws penguins
    e3 set repo ws.inputs.penguins "$(python -c 'import examples.penguins as p; print(p.CSV)')" \
        --null-string NA
    e3 start repo ws && e3 get repo ws.tasks.summary.output -f table
"""

from __future__ import annotations

from importlib.resources import files

from east import (
    ArrayType,
    East,
    FloatType,
    IntegerType,
    OptionType,
    StringType,
    StructType,
    none,
    some,
)

import e3

#: The CSV file inside the installed ``palmerpenguins`` package.
CSV = str(files("palmerpenguins") / "data" / "penguins.csv")

Penguins = e3.type_from_file(CSV, null_strings=["NA"])
penguins = e3.input("penguins", Penguins)

Species = StructType(
    [
        ("species", StringType),
        ("penguins", IntegerType),
        ("bill_measured", IntegerType),
        ("mean_bill_length_mm", OptionType(FloatType)),
        ("weighed", IntegerType),
        ("mean_body_mass_g", OptionType(FloatType)),
    ]
)
Totals = StructType(
    [
        ("penguins", IntegerType),
        ("bill_measured", IntegerType),
        ("bill_sum", FloatType),
        ("weighed", IntegerType),
        ("mass_sum", FloatType),
    ]
)


def _summarise(b, rows):
    def init(_b, _species):
        return {"penguins": 0, "bill_measured": 0, "bill_sum": 0.0, "weighed": 0, "mass_sum": 0.0}

    def step(_b, acc, row):
        bill = row["bill_length_mm"]
        mass = row["body_mass_g"]
        return {
            "penguins": acc["penguins"] + 1,
            "bill_measured": acc["bill_measured"] + East.if_else(bill.is_some(), 1, 0),
            "bill_sum": acc["bill_sum"] + bill.unwrap_or(0.0),
            "weighed": acc["weighed"] + East.if_else(mass.is_some(), 1, 0),
            "mass_sum": acc["mass_sum"] + East.Integer.to_float(mass.unwrap_or(0)),
        }

    groups = rows.group_reduce(lambda _b, row: row["species"], init, step, acc_out=Totals)

    def mean(total, n):
        return East.if_else(n > 0, some(total / East.Integer.to_float(n)), none)

    def out(_b, t, species):
        return {
            "species": species,
            "penguins": t["penguins"],
            "bill_measured": t["bill_measured"],
            "mean_bill_length_mm": mean(t["bill_sum"], t["bill_measured"]),
            "weighed": t["weighed"],
            "mean_body_mass_g": mean(t["mass_sum"], t["weighed"]),
        }

    return groups.to_array(out, out=Species)


summary = e3.task("summary", [penguins], East.function([Penguins], ArrayType(Species), _summarise))
pkg = e3.package("penguins", "1.0.0", summary)
