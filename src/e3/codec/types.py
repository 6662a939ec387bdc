"""East types, re-exported from east-py, plus the few type utilities e3 needs.

Types are East values themselves (variants of ``EastTypeType``), hashable and
comparable with ``==``. They are typed as :data:`EastType` (``Any``) because
east-py's own annotations stop at its C extension boundary.
"""

from __future__ import annotations

from collections.abc import Iterable
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


_INTERNED: dict[tuple[object, ...], EastType] = {}


def canonical(east_type: EastType) -> EastType:
    """The one shared object for recursive types structurally equal to ``east_type``.

    east-py compares types structurally in Python, which costs milliseconds for a
    recursive type such as ``IRType`` (every function IR dataset has it), and
    caches keyed by types compare keys on each lookup. A recursive type decoded
    from a record is mapped, by its structural key (:func:`_type_key`), to one
    shared object (the first seen; ``IRType`` and ``EastTypeType`` themselves), so
    comparisons and cache lookups succeed on identity.
    """
    if east_type.type != "Recursive":
        return east_type
    if not _INTERNED:
        for known in (IRType, EastTypeType):
            _INTERNED[_type_key(known)] = known
    return _INTERNED.setdefault(_type_key(east_type), east_type)


#: Structural keys of recent recursive types, by object (kept alive so ids stay unique).
_KEYS: dict[int, tuple[EastType, tuple[object, ...]]] = {}
_KEYS_KEPT = 512


#: How :func:`_type_key` treats a node, by its class (isinstance against east-py's ABCs and
#: ``Iterable`` cost more than the rest of the walk: IRType has about 6,000 nodes).
_NODE_KINDS: dict[type, str] = {}


def _node_kind(cls: type) -> str:
    if issubclass(cls, EastVariant):
        kind = "variant"
    elif hasattr(cls, "keys"):
        kind = "struct"
    elif issubclass(cls, Iterable) and not issubclass(cls, str | bytes):
        kind = "list"
    elif issubclass(cls, str | bytes | int | float | bool):
        kind = "value"
    else:
        kind = "null"
    _NODE_KINDS[cls] = kind
    return kind


def _type_key(east_type: EastType) -> tuple[object, ...]:
    """A structural identity of a type, blind to the numbering of its recursive nodes.

    A recursive type carries ids (``.Recursive .wrapper (id=4, …)`` and ``.ref 4``)
    that only pair a reference with its wrapper; east-py numbers them from a
    process-wide counter, so the same type declared by a package and read back
    from a value's header can carry different ids (4 and 7, say) and compare
    unequal. The key walks the type (iteratively: untrusted types can be deep),
    renumbering wrappers in the order met, so equal structures give equal keys.
    """
    cached = _KEYS.get(id(east_type))
    if cached is not None and cached[0] is east_type:
        return cached[1]
    tokens: list[object] = []
    ids: dict[int, int] = {}
    stack: list[Any] = [east_type]
    kinds = _NODE_KINDS
    while stack:
        node = stack.pop()
        kind = kinds.get(type(node)) or _node_kind(type(node))
        if kind == "variant":
            if node.type == "wrapper" and hasattr(node.value, "keys"):
                ids[int(node.value["id"])] = len(ids)
                tokens.append(("wrapper", len(ids) - 1))
                stack.append(node.value["inner"])
            elif node.type == "ref" and isinstance(node.value, int):
                tokens.append(("ref", ids.get(node.value, -1 - node.value)))
            else:
                tokens.append(("variant", str(node.type)))
                stack.append(node.value)
        elif kind == "struct":  # a struct (field name, type) or a wrapper's fields
            names = [str(k) for k in node.keys()]  # noqa: SIM118 (an EastStruct)
            tokens.append(("struct", tuple(names)))
            stack.extend(node[k] for k in reversed(names))
        elif kind == "list":
            items = list(node)  # an array (of struct fields, variant cases, function inputs)
            tokens.append(("list", len(items)))
            stack.extend(reversed(items))
        elif kind == "value":
            tokens.append(("value", node))
        else:  # null (east-py's EastNull, or None)
            tokens.append(("null", None))
    key = tuple(tokens)
    if len(_KEYS) >= _KEYS_KEPT:
        _KEYS.clear()
    _KEYS[id(east_type)] = (east_type, key)
    return key


def same_type(a: EastType, b: EastType) -> bool:
    """``a == b`` structurally, fast for recursive types (see :func:`canonical`).

    Recursive types are equal when their structures are, whatever ids east-py
    gave their nodes; a type containing a recursive one is compared by key too.
    """
    if a is b:
        return True
    if a.type != b.type:
        return False
    if identical(a, b):  # microseconds to a millisecond; the walk costs ten
        return True
    if a.type == "Recursive":
        return canonical(a) is canonical(b)
    return _type_key(a) == _type_key(b)


def identical(a: EastType, b: EastType) -> bool:
    """east-py's ``==``: equal structures with equal recursive ids (``False`` if too deep).

    A sufficient test of equality, far cheaper than :func:`same_type`'s walk for
    types decoded from the same bytes; ``False`` says nothing.
    """
    try:
        return bool(a == b)
    except RecursionError:
        return False


def fits(found: EastType, declared: EastType) -> bool:
    """Whether a value of type ``found`` can be stored as ``declared`` (equal or subtype)."""
    return same_type(found, declared) or bool(is_subtype(found, declared))


def type_kind(east_type: EastType) -> str:
    """The type's constructor name, such as ``Integer``, ``Array`` or ``Struct``."""
    return str(east_type.type)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
