"""Work-around for east-py 1.0.97 writing some DateTimes one millisecond early.

east-py turns a Python ``datetime`` into East milliseconds with
``int(value.timestamp() * 1000)``: a float product truncated toward zero,
which lands 1 ms low for some instants (about 1% of them, 6% in some
decades). Encoding and printing both go through it. Values that east-py
decoded into its C-backed containers carry exact milliseconds; only Python
``datetime`` objects are affected, so those are moved to the middle of their
millisecond before east-py sees them. Remove this module when east-py is fixed
(the tripwire test in ``tests/codec`` will say so).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from east import EastStruct, EastVariant


@lru_cache(maxsize=512)
def _has_datetime(east_type: Any) -> bool:
    return "DateTime" in repr(east_type)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_HALF_MS = timedelta(microseconds=500)


def _exact_datetime(value: datetime) -> datetime:
    """A datetime that east-py 1.0.97 encodes as exactly the intended millisecond.

    east-py converts with ``int(value.timestamp() * 1000)``: a float product
    truncated toward zero, which lands 1 ms low for some instants (about 1% of
    them, 6% in some decades). Moving the value to the middle of its
    millisecond puts the product half a millisecond away from any boundary.
    """
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    ms = delta // _MS if delta >= timedelta(0) else -((-delta) // _MS)
    return _EPOCH + ms * _MS + (_HALF_MS if ms >= 0 else -_HALF_MS)


def _fix(value: Any) -> Any:
    """Replace every Python ``datetime`` in a Python-built value.

    C-backed containers decoded by east-py hold exact milliseconds and are left alone.
    """
    if isinstance(value, datetime):
        return _exact_datetime(value)
    if isinstance(value, dict):
        return {_fix(k): _fix(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fix(v) for v in value]
    if isinstance(value, set | frozenset):
        return {_fix(v) for v in value}  # elements stay hashable: structs stay EastStruct
    if isinstance(value, EastVariant):
        return EastVariant(value.type, _fix(value.value))
    if isinstance(value, EastStruct):
        return EastStruct({k: _fix(v) for k, v in value.items()})
    return value


def _fix_typed(value: Any, east_type: Any) -> Any:
    """:func:`_fix`, but only into the parts of ``value`` whose type holds a DateTime."""
    if not _has_datetime(east_type):
        return value
    kind = east_type.type
    if kind == "DateTime":
        return _exact_datetime(value) if isinstance(value, datetime) else value
    if kind == "Struct":
        if not isinstance(value, dict | EastStruct):
            return value
        fixed = dict(value.items())
        for field in east_type.value:
            name = field["name"]
            if name in fixed and _has_datetime(field["type"]):
                fixed[name] = _fix_typed(fixed[name], field["type"])
        return EastStruct(fixed) if isinstance(value, EastStruct) else fixed
    if kind in ("Array", "Set"):
        if isinstance(value, list | tuple):
            return [_fix_typed(v, east_type.value) for v in value]
        if isinstance(value, set | frozenset):
            return {_fix_typed(v, east_type.value) for v in value}
        return value  # a C-backed container: exact already
    if kind == "Dict":
        if not isinstance(value, dict):
            return value
        kt, vt = east_type.value["key"], east_type.value["value"]
        return {_fix_typed(k, kt): _fix_typed(v, vt) for k, v in value.items()}
    if kind == "Variant":
        if not isinstance(value, EastVariant):
            return value
        for case in east_type.value:
            if case["name"] == value.type:
                return EastVariant(value.type, _fix_typed(value.value, case["type"]))
        return value
    return _fix(value)  # recursive and other types: walk everything


def exact_datetimes(value: Any, east_type: Any) -> Any:
    """``value`` with every Python datetime made safe for east-py (if the type has any)."""
    if _has_datetime(east_type):
        return _fix_typed(value, east_type)
    return value
