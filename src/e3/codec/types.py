"""East types, re-exported from east-py, plus the few type utilities e3 needs.

Types are East values themselves (variants of ``EastTypeType``), hashable and
comparable with ``==``. They are typed as :data:`EastType` (``Any``) because
east-py's own annotations stop at its C extension boundary.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from east import (
    ArrayType,
    BlobType,
    BooleanType,
    DateTimeType,
    DictType,
    EastVariant,
    FloatType,
    FunctionType,
    IntegerType,
    NeverType,
    NullType,
    OptionType,
    RecursiveType,
    SetType,
    StringType,
    StructType,
    VariantType,
    is_subtype,
)
from east.serialization.beast2 import encode_beast2_with_header_for
from east.serialization.east_parser import parse_east
from east.serialization.east_printer import print_east
from east.types.type_of_type import EastTypeType, IRType

from e3.errors import DecodeError

#: An East type value (an ``EastTypeType`` variant from east-py).
EastType: TypeAlias = Any
#: An East value as east-py represents it (int, str, EastStruct, EastVariant, proxies…).
EastValue: TypeAlias = Any

__all__ = [
    "ArrayType",
    "BlobType",
    "BooleanType",
    "DateTimeType",
    "DictType",
    "EastType",
    "EastTypeType",
    "EastValue",
    "FloatType",
    "FunctionType",
    "IRType",
    "IntegerType",
    "NeverType",
    "NullType",
    "OptionType",
    "RecursiveType",
    "SetType",
    "StringType",
    "StructType",
    "VariantType",
    "fits",
    "none",
    "parse_type",
    "print_type",
    "short_type",
    "some",
    "type_kind",
    "variant",
]


def variant(case: str, value: EastValue) -> EastValue:
    """A variant value, built directly.

    east-py's ``variant()`` also scans the payload for traced expressions,
    which is quadratic on nested records; stored data never holds any.
    """
    return EastVariant(case, value)


def some(value: EastValue) -> EastValue:
    """``Option`` with a value."""
    return EastVariant("some", value)


#: ``Option`` without a value.
none: EastValue = EastVariant("none", None)


def print_type(east_type: EastType) -> str:
    """East text of a type, complete (recursive types included), e.g. ``.Array .Integer``."""
    return str(print_east(east_type, EastTypeType))


def short_type(east_type: EastType, limit: int = 160) -> str:
    """:func:`print_type`, shortened for one-line messages (IR types are huge)."""
    text = print_type(east_type)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_type(text: str) -> EastType:
    """Parse a type written in East text (``.Integer``, ``.Struct [(name="a", type=.Float)]``)."""
    try:
        return parse_east(EastTypeType, text.strip())
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"invalid East type {text.strip()!r}: {_first_line(exc)}") from exc


_INTERNED: dict[bytes, EastType] = {}


def canonical(east_type: EastType) -> EastType:
    """The one shared object for recursive types equal to ``east_type`` (others as given).

    east-py compares types structurally in Python, which costs milliseconds for a
    recursive type such as ``IRType`` (every function IR dataset has it), and
    caches keyed by types compare keys on each lookup. A recursive type decoded
    from a record is mapped, by its canonical encoding, to the object the Beast2
    header reader returns, so comparisons and cache lookups succeed on identity.
    """
    if east_type.type != "Recursive":
        return east_type
    if not _INTERNED:
        for known in (IRType, EastTypeType):
            _INTERNED[_type_key(known)] = known
    return _INTERNED.setdefault(_type_key(east_type), east_type)


_TYPE_ENCODER: Any = None


def _type_key(east_type: EastType) -> bytes:
    """Canonical bytes of a type: an identity for comparing types (any Beast2 version does)."""
    global _TYPE_ENCODER
    if _TYPE_ENCODER is None:
        _TYPE_ENCODER = encode_beast2_with_header_for(EastTypeType)
    return bytes(_TYPE_ENCODER(east_type))


def same_type(a: EastType, b: EastType) -> bool:
    """``a == b``, fast for recursive types (see :func:`canonical`)."""
    if a is b:
        return True
    if a.type != b.type:
        return False
    if a.type == "Recursive":
        return canonical(a) is canonical(b)
    return bool(a == b)


def fits(found: EastType, declared: EastType) -> bool:
    """Whether a value of type ``found`` can be stored as ``declared`` (equal or subtype)."""
    return same_type(found, declared) or bool(is_subtype(found, declared))


def type_kind(east_type: EastType) -> str:
    """The type's constructor name, such as ``Integer``, ``Array`` or ``Struct``."""
    return str(east_type.type)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
