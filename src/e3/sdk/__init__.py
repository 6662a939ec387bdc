"""Author e3 packages in Python.

Example::

    import e3
    from east import East, IntegerType

    x = e3.input("x", IntegerType, default=10)
    double = e3.task("double", [x], East.function([IntegerType], IntegerType,
                                                  lambda b, v: v * 2))
    pkg = e3.package("hello", "1.0.0", double)
    e3.export(pkg, "hello.zip")

The same names are available as ``e3.input``, ``e3.task`` … on the top-level package.
"""

from e3.sdk.definitions import NO_DEFAULT, Dataset, Task, custom_task, input, task
from e3.sdk.package import Package, build, export, package

__all__ = [
    "NO_DEFAULT",
    "Dataset",
    "Package",
    "Task",
    "build",
    "custom_task",
    "export",
    "input",
    "package",
    "task",
]
