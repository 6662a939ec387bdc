"""The README quick start: one input, one task that doubles it."""

from east import East, IntegerType

import e3

x = e3.input("x", IntegerType, default=10)
double = e3.task("double", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 2))

pkg = e3.package("hello", "1.0.0", double)
