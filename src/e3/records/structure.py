"""The dataset tree of a package: which datasets exist, their types, which are writable.

``Structure = Recursive Variant { struct: Dict<String, Structure>, value: Struct{type, writable} }``
(case order is alphabetical, as East sorts variant cases).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from e3.base.paths import DatasetPath
from e3.codec.types import (
    BooleanType,
    DictType,
    EastType,
    EastTypeType,
    EastValue,
    RecursiveType,
    StringType,
    StructType,
    VariantType,
    variant,
)
from e3.errors import DecodeError

DatasetSpecType = StructType([("type", EastTypeType), ("writable", BooleanType)])
#: Deepest dataset tree accepted (a dataset path has at most this many names).
#: Real trees are a handful of levels deep; every walk of a tree is recursive.
MAX_DEPTH = 64

StructureType = RecursiveType(
    lambda self: VariantType([("struct", DictType(StringType, self)), ("value", DatasetSpecType)])
)


@dataclass(frozen=True)
class DatasetSpec:
    """A leaf dataset: its declared East type and whether users may ``set`` it."""

    type: EastType
    writable: bool


@dataclass(frozen=True)
class StructNode:
    """An inner node of the dataset tree."""

    children: dict[str, Node] = field(default_factory=dict)


Node = StructNode | DatasetSpec


def to_east(node: Node) -> EastValue:
    """Structure node as an East value of :data:`StructureType`."""
    if isinstance(node, DatasetSpec):
        return variant("value", {"type": node.type, "writable": node.writable})
    return variant("struct", {k: to_east(v) for k, v in sorted(node.children.items())})


def from_east(value: EastValue, depth: int = 0) -> Node:
    """Inverse of :func:`to_east`.

    Raises:
        DecodeError: the tree is nested deeper than :data:`MAX_DEPTH` (a hostile
            package could otherwise exhaust the interpreter's recursion limit).
    """
    if value.type == "value":
        spec = value.value
        return DatasetSpec(type=spec["type"], writable=bool(spec["writable"]))
    if depth >= MAX_DEPTH:
        raise DecodeError(f"the dataset tree is nested deeper than {MAX_DEPTH} levels")
    return StructNode({str(k): from_east(v, depth + 1) for k, v in value.value.items()})


def find(root: Node, path: DatasetPath) -> Node | None:
    """The node at ``path``, or ``None`` if the path does not exist."""
    node = root
    for seg in path:
        if not isinstance(node, StructNode) or seg not in node.children:
            return None
        node = node.children[seg]
    return node


def leaves(root: Node, prefix: DatasetPath = ()) -> Iterator[tuple[DatasetPath, DatasetSpec]]:
    """Every leaf dataset with its path, in sorted (deterministic) order."""
    if isinstance(root, DatasetSpec):
        yield prefix, root
        return
    for name in sorted(root.children):
        yield from leaves(root.children[name], (*prefix, name))
