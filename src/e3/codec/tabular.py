"""What the table formats (CSV, Parquet, Arrow, the terminal table) share.

A table is an ``Array`` of ``Struct``; a missing value is an ``Option`` field
(``.Variant [(name="none", …), (name="some", …)]``). Messages name types the
short way people read them (``Option<Float>``), and inferred types are printed
as East type text without back-references, so they can be read, edited and
given back as ``--type``.
"""

from __future__ import annotations

import json
from typing import Any

from e3.codec.types import EastType, print_type, type_kind
from e3.errors import TypeMismatch


def is_option(t: EastType) -> bool:
    """Whether ``t`` is ``Option<T>`` (a variant of exactly ``none`` and ``some``)."""
    return type_kind(t) == "Variant" and [str(c["name"]) for c in t.value] == ["none", "some"]


def option_inner(t: EastType) -> EastType:
    """``T`` of ``Option<T>``; any other type as it is."""
    return t.value[1]["type"] if is_option(t) else t


def describe(t: EastType, limit: int = 80) -> str:
    """A short readable name of a type for messages: ``Option<Float>``, ``Array<Integer>``."""
    kind = type_kind(t)
    if is_option(t):
        text = f"Option<{describe(t.value[1]['type'], limit)}>"
    elif kind in ("Array", "Set", "Ref"):
        text = f"{kind}<{describe(t.value, limit)}>"
    elif kind == "Dict":
        text = f"Dict<{describe(t.value['key'], limit)}, {describe(t.value['value'], limit)}>"
    elif kind in ("Struct", "Variant"):
        text = f"{kind}{{{', '.join(str(f['name']) for f in t.value)}}}"
    else:
        text = kind
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table_fields(east_type: EastType, what: str = "a table") -> list[tuple[str, EastType]]:
    """``(name, type)`` of each field of an ``Array<Struct>`` type.

    Raises:
        TypeMismatch: the type is not an Array of Struct.
    """
    if type_kind(east_type) != "Array" or type_kind(east_type.value) != "Struct":
        raise TypeMismatch(f"{what} needs an Array of Struct type, got {describe(east_type)}")
    return [(str(f["name"]), f["type"]) for f in east_type.value.value]


def is_table(east_type: EastType) -> bool:
    """Whether values of this type are tables (``Array<Struct>``)."""
    return type_kind(east_type) == "Array" and type_kind(east_type.value) == "Struct"


def rows(value: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a table value.

    A C-backed array is sliced in C (``value[a:b]`` on east-py's proxies boxes
    every row it copies: seconds for 65,536 rows); a Python list as usual.
    """
    cut = getattr(value, "slice", None)
    return cut(start, stop) if cut is not None else value[start:stop]


def type_text(t: EastType) -> str:
    """East type text with every part written out.

    ``print_type`` writes a repeated part as a back-reference, which is correct
    but hard to read and edit; this is what ``--infer-type`` prints.
    """
    kind = type_kind(t)
    if kind in ("Array", "Set", "Ref"):
        return f".{kind} {type_text(t.value)}"
    if kind == "Dict":
        return f".Dict (key={type_text(t.value['key'])}, value={type_text(t.value['value'])})"
    if kind in ("Struct", "Variant"):
        parts = ", ".join(
            f"(name={json.dumps(str(f['name']), ensure_ascii=False)}, type={type_text(f['type'])})"
            for f in t.value
        )
        return f".{kind} [{parts}]"
    return print_type(t)
