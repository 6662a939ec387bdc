"""Generated packages of N trivial tasks, used by benchmarks and tests.

`make(n, shape)` builds:
- ``fanout``: one input ``x`` and N independent tasks ``t0 … t{N-1}``, each x + i;
- ``chain``: N tasks in a line, ``t0 = x + 1``, ``t{i} = t{i-1} + 1``;
- ``shell_fanout``: N independent shell tasks copying ``x`` (custom tasks);
- ``noop_fanout``: N independent shell tasks running ``true`` (output type Null).
"""

from east import East, IntegerType, NullType

import e3

_add_one = East.function([IntegerType], IntegerType, lambda b, v: v + 1)


def _add(i: int):
    return East.function([IntegerType], IntegerType, lambda b, v: v + i)


def make(n: int, shape: str = "fanout", version: str = "1.0.0") -> e3.sdk.Package:
    """A package of ``n`` tasks of the given shape."""
    x = e3.input("x", IntegerType, default=0)
    tasks: list[e3.sdk.Task] = []
    if shape == "fanout":
        tasks = [e3.task(f"t{i}", [x], _add(i)) for i in range(n)]
    elif shape == "chain":
        prev: e3.sdk.Dataset | e3.sdk.Task = x
        for i in range(n):
            prev = e3.task(f"t{i}", [prev], _add_one)
            tasks.append(prev)
    elif shape == "shell_fanout":
        tasks = [
            e3.custom_task(f"t{i}", [x], IntegerType, "cp {inputs[0]} {output}") for i in range(n)
        ]
    elif shape == "noop_fanout":
        tasks = [e3.custom_task(f"t{i}", [x], NullType, "true") for i in range(n)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return e3.package(f"{shape}{n}", version, *tasks)


pkg = make(10)
