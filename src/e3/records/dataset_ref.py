"""What a dataset currently holds: nothing yet, null, or an object hash.

``DatasetRef = Variant { null: {versions}, unassigned: Null, value: {hash, versions} }``
where ``versions`` is a version vector (root-input keypath → content hash)
that records which root inputs a task output was computed from.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Literal

from e3.codec import beast2, small
from e3.codec.types import DictType, NullType, StringType, StructType, VariantType, variant
from e3.errors import DecodeError

VersionVectorType = DictType(StringType, StringType)
DatasetRefType = VariantType(
    [
        ("null", StructType([("versions", VersionVectorType)])),
        ("unassigned", NullType),
        ("value", StructType([("hash", StringType), ("versions", VersionVectorType)])),
    ]
)

RefKind = Literal["unassigned", "null", "value"]


@dataclass(frozen=True)
class DatasetRef:
    """A dataset's state. ``hash`` is set exactly when ``kind == "value"``."""

    kind: RefKind
    hash: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def unassigned() -> DatasetRef:
        """No value yet (e.g. a task output never computed)."""
        return DatasetRef("unassigned")

    @staticmethod
    def of(hash_: str, versions: dict[str, str] | None = None) -> DatasetRef:
        """A ref to the object ``hash_``."""
        return DatasetRef("value", hash_, dict(versions or {}))


def to_east(ref: DatasetRef) -> object:
    """As an East value of :data:`DatasetRefType`."""
    if ref.kind == "value":
        return variant("value", {"hash": ref.hash, "versions": dict(sorted(ref.versions.items()))})
    if ref.kind == "null":
        return variant("null", {"versions": dict(sorted(ref.versions.items()))})
    return variant("unassigned", None)


def from_east(value: object) -> DatasetRef:
    """Inverse of :func:`to_east`."""
    case = value.type  # type: ignore[attr-defined]
    payload = value.value  # type: ignore[attr-defined]
    if case == "value":
        return DatasetRef(
            "value", str(payload["hash"]), {str(k): str(v) for k, v in payload["versions"].items()}
        )
    if case == "null":
        return DatasetRef("null", None, {str(k): str(v) for k, v in payload["versions"].items()})
    return DatasetRef("unassigned")


def encode(ref: DatasetRef) -> bytes:
    """Beast2 bytes of a ref (the content of a ``.ref`` file)."""
    return beast2.encode(to_east(ref), DatasetRefType)


def decode(data: bytes) -> DatasetRef:
    """Parse a ``.ref`` file.

    Refs e3 wrote start with the canonical header and are read directly
    (:mod:`e3.codec.small`: a few µs, where east-py takes about 13); anything
    else, or anything that reader does not take, goes to east-py.
    """
    header = _header()
    with contextlib.suppress(small.NotSmall):
        return _read(small.stream(data, header))
    value = beast2.decode(data, DatasetRefType, trusted=data.startswith(header))
    try:
        return from_east(value)
    except UnicodeDecodeError as exc:  # east-py decodes strings when they are first read
        raise DecodeError(f"invalid Beast2 data: {exc}") from exc


def _read(stream: bytes) -> DatasetRef:
    r = small.Reader(stream)
    case = r.varint()
    if case == 2:
        ref = DatasetRef("value", r.string(), r.string_dict())
    elif case == 1:
        ref = DatasetRef("unassigned")
    elif case == 0:
        ref = DatasetRef("null", None, r.string_dict())
    else:
        raise small.NotSmall("variant case")
    r.end()
    return ref


@functools.cache
def _header() -> bytes:
    """What every ref e3 writes starts with: magic, type section and source map."""
    data = encode(DatasetRef.unassigned())
    return data[: beast2.header_size(data)]
