"""Human formats of East values: ``.east`` text and JSON (CSV: :mod:`e3.codec.csv_io`).

All of them are type-directed (an Integer is ``"42"`` in JSON, a DateTime has
no zone in ``.east``), so every function takes the East type. Errors from
east-py are turned into one-line :class:`~e3.errors.DecodeError` messages that
name the format and the type that was expected.
"""

from __future__ import annotations

import json
from typing import Any

from east.serialization.east_parser import parse_east
from east.serialization.east_printer import print_east
from east.serialization.json import decode_json_for, encode_json_for

from e3.codec._datetimes import exact_datetimes
from e3.codec.plain import plain
from e3.codec.types import EastType, EastValue, short_type, type_kind
from e3.errors import DecodeError, TypeMismatch


def to_east(value: EastValue, east_type: EastType) -> str:
    """``.east`` text of a value."""
    try:
        return str(print_east(exact_datetimes(value, east_type), east_type))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise TypeMismatch(
            f"value does not fit type {short_type(east_type)}: {_line(exc)}"
        ) from exc


def from_east(text: str, east_type: EastType) -> EastValue:
    """Parse ``.east`` text as a value of ``east_type``."""
    try:
        return plain(parse_east(east_type, text.strip()), east_type)
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
        raise DecodeError(
            f"invalid .east value for type {short_type(east_type)}: {_line(exc)}"
        ) from exc


def to_json(value: EastValue, east_type: EastType, *, indent: int | None = 2) -> str:
    """East's type-directed JSON of a value (pretty-printed unless ``indent=None``)."""
    try:
        raw = encode_json_for(east_type)(exact_datetimes(value, east_type))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise TypeMismatch(
            f"value does not fit type {short_type(east_type)}: {_line(exc)}"
        ) from exc
    text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else str(raw)
    if indent is None:
        return text
    return json.dumps(json.loads(text), indent=indent, ensure_ascii=False)


def from_json(text: str | bytes, east_type: EastType) -> EastValue:
    """Parse East JSON as a value of ``east_type``."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    _check_json(data, east_type)
    try:
        return plain(decode_json_for(east_type)(data), east_type)
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
        raise DecodeError(
            f"invalid JSON value for type {short_type(east_type)}: {_line(exc)}"
        ) from exc


# east-py 1.0.97's JSON reader corrupts memory on some malformed input (found by
# `python -m fuzz hostile`): on syntax errors, and when it reports a Dict entry object
# with other fields than "key" and "value" (its message, which quotes the whole entry,
# overflows a buffer sized for less). So east-c only ever sees text that Python's own
# JSON parser accepts, and whose Dict entries are exactly {"key": …, "value": …}.


def _check_json(data: bytes, east_type: EastType) -> None:
    """Refuse what east-py's JSON reader cannot be trusted with (see above)."""
    try:
        doc = json.loads(data)
    except RecursionError as exc:
        raise DecodeError(
            f"invalid JSON value for type {short_type(east_type)}: nested too deeply"
        ) from exc
    except ValueError as exc:  # includes UnicodeDecodeError
        raise DecodeError(
            f"invalid JSON value for type {short_type(east_type)}: {_line(exc)}"
        ) from exc
    if _has_dict(east_type):
        _check_dict_entries(doc, east_type)


def _has_dict(t: EastType, depth: int = 0) -> bool:
    kind = type_kind(t)
    if kind in ("Dict", "Recursive") or depth > 64:
        return True
    if kind in ("Array", "Set", "Option", "Ref"):
        return _has_dict(t.value, depth + 1)
    if kind in ("Struct", "Variant"):
        return any(_has_dict(f["type"], depth + 1) for f in t.value)
    return False


def _check_dict_entries(doc: Any, east_type: EastType) -> None:
    # (node, its type); None: below a Recursive type, whose shape is not followed.
    stack: list[tuple[Any, EastType | None]] = [(doc, east_type)]
    while stack:
        node, t = stack.pop()
        if t is None or type_kind(t) == "Recursive":  # shape not followed: any entry-like object
            if isinstance(node, dict):
                if "key" in node or "value" in node:
                    _check_entry(node, east_type)
                stack.extend((v, None) for v in node.values())
            elif isinstance(node, list):
                stack.extend((v, None) for v in node)
            continue
        kind = type_kind(t)
        if kind == "Dict" and isinstance(node, list):
            for entry in node:
                if isinstance(entry, dict):
                    _check_entry(entry, east_type)
                    stack.append((entry.get("key"), t.value["key"]))
                    stack.append((entry.get("value"), t.value["value"]))
        elif kind in ("Array", "Set") and isinstance(node, list):
            stack.extend((v, t.value) for v in node)
        elif kind == "Option" and node is not None:
            stack.append((node, t.value))
        elif kind == "Struct" and isinstance(node, dict):
            stack.extend((node[str(f["name"])], f["type"]) for f in t.value if f["name"] in node)
        elif kind == "Variant" and _is_option(t):  # JSON: null, or the value itself
            if node is not None:
                stack.append((node, next(f["type"] for f in t.value if f["name"] == "some")))
        elif kind == "Variant" and isinstance(node, dict):
            for f in t.value:
                if f["name"] == node.get("type"):
                    stack.append((node.get("value"), f["type"]))


def _is_option(t: EastType) -> bool:
    return sorted(str(f["name"]) for f in t.value) == ["none", "some"]


def _check_entry(entry: dict[str, Any], east_type: EastType) -> None:
    if set(entry) != {"key", "value"}:
        fields = ", ".join(repr(k[:40]) for k in entry)
        raise DecodeError(
            f"invalid JSON value for type {short_type(east_type)}: a Dict entry must be "
            f'{{"key": …, "value": …}}, got one with fields {fields}'
        )


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
