"""A diamond: two inputs, two branches, one merge (a=10, b=5 → left 15, right 50, merge 65)."""

from east import East, IntegerType

import e3

a = e3.input("a", IntegerType, default=10)
b = e3.input("b", IntegerType, default=5)

add = East.function([IntegerType, IntegerType], IntegerType, lambda blk, x, y: x + y)
mul = East.function([IntegerType, IntegerType], IntegerType, lambda blk, x, y: x * y)

left = e3.task("left", [a, b], add)
right = e3.task("right", [a, b], mul)
merge = e3.task("merge", [left, right], add)

pkg = e3.package("diamond", "1.0.0", merge)
