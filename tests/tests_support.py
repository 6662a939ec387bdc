"""Helpers shared by test modules (importable because tests/ is on sys.path via rootdir)."""

from __future__ import annotations

from pathlib import Path

from east import East, IntegerType

import e3
from e3.sdk import Package

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def versioned_hello(version: str, *, default: int = 10, name: str = "hello") -> Package:
    """The hello package at any version, with a chosen default for x."""
    x = e3.input("x", IntegerType, default=default)
    double = e3.task("double", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 2))
    return e3.package(name, version, double)
