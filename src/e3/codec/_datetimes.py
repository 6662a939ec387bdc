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

from e3.codec.small import epoch_ms


@lru_cache(maxsize=512)
def _has_datetime(east_type: Any) -> bool:
    """Whether values of ``east_type`` can hold a DateTime.

    Only a DateTime node in the type counts; a variant *case* named DateTime, as
    in the type of types, does not.
    """
    return _contains_datetime(east_type, set())


def _contains_datetime(t: Any, seen: set[int]) -> bool:
    kind = t.type
    if kind == "DateTime":
        return True
    if kind in ("Array", "Set", "Ref", "Vector", "Matrix"):
        return _contains_datetime(t.value, seen)
    if kind == "Dict":
        return _contains_datetime(t.value["key"], seen) or _contains_datetime(
            t.value["value"], seen
        )
    if kind in ("Struct", "Variant"):
        return any(_contains_datetime(f["type"], seen) for f in t.value)
    if kind == "Recursive":
        node = t.value
        if node.type == "wrapper":
            if node.value["id"] in seen:
                return False
            seen.add(node.value["id"])
            return _contains_datetime(node.value["inner"], seen)
        return False  # a reference back to an enclosing wrapper being examined
    return False  # scalars; functions carry IR, not DateTime values


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
    ms = epoch_ms(value)
    return _EPOCH + ms * _MS + (_HALF_MS if ms >= 0 else -_HALF_MS)


def _fix(value: Any) -> Any:
    """Replace every Python ``datetime`` in a Python-built value.

    Containers are rebuilt only where something changed, so a value without
    datetimes comes back as the very same object (its sharing, which Beast2
    encodes as back-references, is kept). C-backed containers decoded by
    east-py hold exact milliseconds and are left alone.
    """
    if isinstance(value, datetime):
        return _exact_datetime(value)
    if isinstance(value, dict):
        items = [(_fix(k), _fix(v)) for k, v in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list | tuple):
        fixed = [_fix(v) for v in value]
        return value if all(a is b for a, b in zip(fixed, value, strict=True)) else fixed
    if isinstance(value, set | frozenset):
        fixed_set = {_fix(v) for v in value}  # elements stay hashable: structs stay EastStruct
        return value if fixed_set == value else fixed_set
    if isinstance(value, EastVariant):
        inner = _fix(value.value)
        return value if inner is value.value else EastVariant(value.type, inner)
    if isinstance(value, EastStruct):
        pairs = {k: _fix(v) for k, v in value.items()}
        if all(pairs[k] is v for k, v in value.items()):
            return value
        return EastStruct(pairs)
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


def has_datetime(east_type: Any) -> bool:
    """Whether values of ``east_type`` can hold a DateTime, which east-py may write 1 ms early.

    e3's encoder writes such values exactly, so bytes of the same value from
    east-py's writer and from e3's can differ: whoever must give the bytes
    east-py's command gives (the warm East worker) checks this first.
    """
    return _has_datetime(east_type)


def exact_datetimes(value: Any, east_type: Any) -> Any:
    """``value`` with every Python datetime made safe for east-py (if the type has any)."""
    if _has_datetime(east_type):
        return _fix_typed(value, east_type)
    return value
