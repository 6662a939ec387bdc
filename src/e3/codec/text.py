"""Human formats of East values: ``.east`` text, JSON and CSV.

All of them are type-directed (an Integer is ``"42"`` in JSON, a DateTime has
no zone in ``.east``), so every function takes the East type. Errors from
east-py are turned into one-line :class:`~e3.errors.DecodeError` messages that
name the format and the type that was expected.
"""

from __future__ import annotations

import json

from east.serialization.csv import decode_csv_for, encode_csv_for
from east.serialization.east_parser import parse_east
from east.serialization.east_printer import print_east
from east.serialization.json import decode_json_for, encode_json_for

from e3.codec._datetimes import exact_datetimes
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
        return parse_east(east_type, text.strip())
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
    try:
        return decode_json_for(east_type)(data)
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
        raise DecodeError(
            f"invalid JSON value for type {short_type(east_type)}: {_line(exc)}"
        ) from exc


def _check_csv_type(east_type: EastType) -> None:
    if type_kind(east_type) != "Array" or type_kind(east_type.value) != "Struct":
        raise TypeMismatch(f"CSV needs an Array of Struct type, got {short_type(east_type)}")


def from_csv(text: str, east_type: EastType) -> EastValue:
    """Parse CSV (header row of field names) as an ``Array<Struct>``."""
    _check_csv_type(east_type)
    try:
        return decode_csv_for(east_type)(text)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise DecodeError(f"invalid CSV for type {short_type(east_type)}: {_line(exc)}") from exc


def to_csv(value: EastValue, east_type: EastType) -> str:
    """CSV text of an ``Array<Struct>`` value."""
    _check_csv_type(east_type)
    out = encode_csv_for(east_type)(exact_datetimes(value, east_type))
    return out.decode("utf-8") if isinstance(out, bytes | bytearray) else str(out)


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
