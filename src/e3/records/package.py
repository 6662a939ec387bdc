"""Package objects: a package's dataset tree, initial dataset values and tasks.

``PackageObject = Struct { tasks: Dict<String, String>,
data: Struct { structure: Structure, refs: Dict<String, DatasetRef> } }``.
``tasks`` maps task names to task-object hashes; ``refs`` maps slash-joined
dataset paths (``inputs/x``) to their initial refs.
"""

from __future__ import annotations

from dataclasses import dataclass

from e3.base.paths import DatasetPath, path_from_ref_key, ref_key
from e3.codec import beast2
from e3.codec.types import DictType, EastValue, StringType, StructType
from e3.records import dataset_ref, structure
from e3.records.dataset_ref import DatasetRef, DatasetRefType
from e3.records.structure import StructureType

PackageDataType = StructType(
    [("structure", StructureType), ("refs", DictType(StringType, DatasetRefType))]
)
PackageObjectType = StructType(
    [("tasks", DictType(StringType, StringType)), ("data", PackageDataType)]
)


@dataclass(frozen=True)
class PackageObject:
    """A package's content (its name and version live in the ref, not here)."""

    tasks: dict[str, str]
    structure: structure.Node
    refs: dict[DatasetPath, DatasetRef]


def to_east(pkg: PackageObject) -> EastValue:
    """As an East value of :data:`PackageObjectType`."""
    return {
        "tasks": dict(sorted(pkg.tasks.items())),
        "data": {
            "structure": structure.to_east(pkg.structure),
            "refs": {ref_key(p): dataset_ref.to_east(r) for p, r in sorted(pkg.refs.items())},
        },
    }


def from_east(value: EastValue) -> PackageObject:
    """Inverse of :func:`to_east`."""
    data = value["data"]
    return PackageObject(
        tasks={str(k): str(v) for k, v in value["tasks"].items()},
        structure=structure.from_east(data["structure"]),
        refs={path_from_ref_key(str(k)): dataset_ref.from_east(v) for k, v in data["refs"].items()},
    )


def encode(pkg: PackageObject) -> bytes:
    """Canonical bytes of a package object."""
    return beast2.encode(to_east(pkg), PackageObjectType)


def decode(data: bytes, *, limit: int | None = None) -> PackageObject:
    """Parse a package object (``limit``: most bytes it may decode to, for untrusted bytes)."""
    return from_east(beast2.decode(data, PackageObjectType, trusted=False, limit=limit))
