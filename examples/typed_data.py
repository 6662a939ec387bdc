"""Typed data: Integer, Float, String, DateTime, Array, Struct, Dict and Variant.

`orders` is an array of structs; `summarise` totals the order value per
customer (a Dict) and `report` turns that into a struct with a variant status.
"""

from datetime import UTC, datetime

from east import (
    ArrayType,
    DateTimeType,
    DictType,
    East,
    FloatType,
    IntegerType,
    NullType,
    StringType,
    StructType,
    VariantType,
    struct,
    variant,
)

import e3

Channel = VariantType([("online", StringType), ("store", IntegerType)])
Order = StructType(
    [
        ("customer", StringType),
        ("quantity", IntegerType),
        ("price", FloatType),
        ("placed", DateTimeType),
        ("channel", Channel),
    ]
)

orders = e3.input(
    "orders",
    ArrayType(Order),
    default=[
        {
            "customer": "ada",
            "quantity": 2,
            "price": 9.5,
            "placed": datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
            "channel": variant("online", "web"),
        },
        {
            "customer": "bob",
            "quantity": 1,
            "price": 120.0,
            "placed": datetime(2026, 1, 6, 14, 0, tzinfo=UTC),
            "channel": variant("store", 7),
        },
        {
            "customer": "ada",
            "quantity": 5,
            "price": 3.25,
            "placed": datetime(2026, 2, 1, 8, 15, tzinfo=UTC),
            "channel": variant("store", 3),
        },
    ],
)
threshold = e3.input("threshold", FloatType, default=50.0)

Totals = DictType(StringType, FloatType)
summarise = e3.task(
    "summarise",
    [orders],
    East.function(
        [ArrayType(Order)],
        Totals,
        lambda b, os: os.group_sum(
            lambda b2, o, i: o.customer,
            lambda b2, o, i: o.price * o.quantity.to_float(),
        ),
    ),
)

Status = VariantType([("big", FloatType), ("small", NullType)])
Report = StructType([("customers", IntegerType), ("total", FloatType), ("status", Status)])


def _report(b, totals, limit):
    total = b.let(totals.sum())
    status = East.if_else(
        total > limit, variant("big", total, Status), variant("small", None, Status)
    )
    return struct({"customers": totals.size(), "total": total, "status": status}, Report)


report = e3.task(
    "report",
    [summarise, threshold],
    East.function([Totals, FloatType], Report, _report),
)

pkg = e3.package("typed_data", "1.0.0", report)
