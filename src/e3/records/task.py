"""Task objects: which command runs, on which input datasets, into which output.

``TaskObject = Struct { commandIr: String, inputs: Array<TreePath>, output: TreePath }``
with ``TreePath = Array<Variant { field: String }>``. ``commandIr`` is the hash
of an IR object: an East function ``(input_paths, output_path) -> argv``.
The SHA-256 of a task object's bytes is the task's identity in the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from e3.base.paths import DatasetPath
from e3.codec import beast2
from e3.codec.types import ArrayType, EastValue, StringType, StructType, VariantType, variant

PathSegmentType = VariantType([("field", StringType)])
TreePathType = ArrayType(PathSegmentType)
TaskObjectType = StructType(
    [("commandIr", StringType), ("inputs", ArrayType(TreePathType)), ("output", TreePathType)]
)


@dataclass(frozen=True)
class TaskObject:
    """A task's definition, content-addressed."""

    command_ir: str
    inputs: tuple[DatasetPath, ...]
    output: DatasetPath


def path_to_east(path: DatasetPath) -> EastValue:
    """A dataset path as an East ``TreePath``."""
    return [variant("field", seg) for seg in path]


def path_from_east(value: EastValue) -> DatasetPath:
    """Inverse of :func:`path_to_east`."""
    return tuple(str(seg.value) for seg in value)


def to_east(task: TaskObject) -> EastValue:
    """As an East value of :data:`TaskObjectType`."""
    return {
        "commandIr": task.command_ir,
        "inputs": [path_to_east(p) for p in task.inputs],
        "output": path_to_east(task.output),
    }


def from_east(value: EastValue) -> TaskObject:
    """Inverse of :func:`to_east`."""
    return TaskObject(
        command_ir=str(value["commandIr"]),
        inputs=tuple(path_from_east(p) for p in value["inputs"]),
        output=path_from_east(value["output"]),
    )


def encode(task: TaskObject) -> bytes:
    """Canonical bytes of a task object."""
    return beast2.encode(to_east(task), TaskObjectType)


def decode(data: bytes, *, limit: int | None = None) -> TaskObject:
    """Parse a task object (``limit``: most bytes it may decode to, for untrusted bytes)."""
    return from_east(beast2.decode(data, TaskObjectType, trusted=False, limit=limit))
