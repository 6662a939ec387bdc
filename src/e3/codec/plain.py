"""Decoded East values as plain Python containers, with nothing left in east-c.

east-py (1.0.97) decodes Arrays, Sets, Dicts and Refs into proxies over live
east-c values, and east-c keeps every live container on a list whose head is
*thread-local*. Releasing a container on another thread than the one that made
it (a proxy dropped or garbage-collected there, or after its thread ended)
unlinks it from the wrong list and writes into freed memory: the in-process
server, the engine thread and the porcelain's callers crashed the process that
way (seen as a segfault during garbage collection). So e3 never lets a proxy
out of the call that decoded it: :func:`plain` copies the value into ``list``,
``set``, ``dict`` and bare :class:`~east.EastRef` (structs and variants are
rebuilt around them) on the decoding thread, and the proxies die there.

Sharing is kept: two places that held the same east-c container get the same
Python object, so re-encoding gives the same Beast2 back-references and hence
the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from functools import lru_cache
from typing import Any

from east import EastRef, EastStruct, EastVariant
from east.types.values.collections import EastArray, EastDict, EastSet

_CONTAINER_KINDS = frozenset({"Array", "Set", "Dict", "Ref", "Recursive"})


@lru_cache(maxsize=1024)
def holds_containers(east_type: Any) -> bool:
    """Whether a value of ``east_type`` can hold an Array, Set, Dict or Ref.

    A recursive type is assumed to (the type of types and IR do).
    """
    kind = east_type.type
    if kind in _CONTAINER_KINDS:
        return True
    if kind in ("Struct", "Variant"):
        return any(holds_containers(f["type"]) for f in east_type.value)
    return False


def plain(value: Any, east_type: Any = None) -> Any:
    """``value`` with every east-c backed container replaced by a Python one.

    Values without such containers come back as the very same object. With
    ``east_type`` known, the copy follows the type: parts that cannot hold a
    container are not even looked at.
    """
    if east_type is None:
        return _Copier({}).copy(value)
    copy = _copier_for(east_type)
    return value if copy is None else copy(value, {})


_Copy = Callable[[Any, dict[int, Any]], Any]  # (value, the copies made so far by address)
#: Past this depth of a type, the walk that keeps its own stack takes over.
_TYPED_DEPTH = 48


@lru_cache(maxsize=512)
def _copier_for(east_type: Any) -> _Copy | None:
    """The copy function of values of ``east_type`` (``None``: nothing to copy)."""
    return _compile(east_type, 0)


def _compile(t: Any, depth: int) -> _Copy | None:
    if not holds_containers(t):
        return None
    kind = t.type
    if kind == "Recursive" or depth > _TYPED_DEPTH:
        return lambda value, seen: _Copier(seen).copy(value)
    if kind == "Set":
        return lambda value, seen: set(value)  # elements are of immutable types
    if kind == "Struct":
        return _struct_copier(t, depth)
    if kind == "Variant":
        cases = {c["name"]: _compile(c["type"], depth + 1) for c in t.value}

        def copy_variant(value: Any, seen: dict[int, Any]) -> Any:
            inner = cases.get(value.type)
            return value if inner is None else EastVariant(value.type, inner(value.value, seen))

        return copy_variant
    inner_type = t.value["value"] if kind == "Dict" else t.value
    return _container_copier(kind, _compile(inner_type, depth + 1))


def _struct_copier(t: Any, depth: int) -> _Copy:
    fields = [
        (f["name"], copy) for f in t.value if (copy := _compile(f["type"], depth + 1)) is not None
    ]

    def copy_struct(value: Any, seen: dict[int, Any]) -> Any:
        pairs = dict(value.items())
        for name, copy in fields:
            pairs[name] = copy(pairs[name], seen)
        return EastStruct(pairs)

    return copy_struct


def _container_copier(kind: str, inner: _Copy | None) -> _Copy:
    """Arrays, Dicts and Refs: one copy per east-c container, however often it is met."""
    fill = {"Array": _fill_array, "Dict": _fill_dict}.get(kind, _fill_ref)

    def copy_container(value: Any, seen: dict[int, Any]) -> Any:
        address = _address(value)
        done = seen.get(address)
        if done is not None:
            return done
        return fill(value, address, inner, seen)

    return copy_container


def _address(value: Any) -> int:
    """What identifies a container: its east-c address (a plain Python one: its id)."""
    return int(getattr(value, "_c_ptr", 0)) or id(value)


def _fill_array(value: Any, address: int, inner: _Copy | None, seen: dict[int, Any]) -> Any:
    if inner is None:
        out = seen[address] = list(value)
        return out
    out = seen[address] = []
    out.extend([inner(item, seen) for item in value])
    return out


def _fill_dict(value: Any, address: int, inner: _Copy | None, seen: dict[int, Any]) -> Any:
    if inner is None:
        out = seen[address] = dict(value.items())
        return out
    out = seen[address] = {}
    out.update({key: inner(item, seen) for key, item in value.items()})
    return out


def _fill_ref(value: Any, address: int, inner: _Copy | None, seen: dict[int, Any]) -> Any:
    out = seen[address] = EastRef(None)
    item = value.value
    out.value = item if inner is None else inner(item, seen)
    return out


_Step = tuple[bool, Any]  # (True, the copy) or (False, a generator building it)
_LEAF = "leaf"


class _Copier:
    """One walk over one value; ``seen`` maps an east-c address to its copy.

    The walk keeps its own stack (a generator per container still being
    filled) rather than Python's: decoded values can nest far deeper than the
    interpreter's recursion limit (e3 refuses over-deep ones later, with a
    message that says so). Scalars are taken as they are, without a trip
    through the stack.
    """

    def __init__(self, seen: dict[int, Any]) -> None:
        self.seen = seen

    def copy(self, root: Any) -> Any:
        done, result = self._start(root)
        if done:
            return result
        stack: list[Generator[Any, Any, Any]] = [result]
        sent: Any = None
        while stack:
            try:
                child = stack[-1].send(sent)
            except StopIteration as finished:
                stack.pop()
                sent = finished.value
                continue
            done, result = self._start(child)
            if done:
                sent = result
            else:
                stack.append(result)
                sent = None
        return sent

    def _start(self, value: Any) -> _Step:
        kind = _kind(value)
        if kind is _LEAF:
            return True, value
        if kind == "struct":
            if all(_kind(field) is _LEAF for field in value.values()):
                return True, value
            return False, self._struct(value)
        if kind == "variant":
            if _kind(value.value) is _LEAF:
                return True, value
            return False, self._variant(value)
        if kind == "set":
            return True, set(value)  # elements are of immutable types: no container inside
        address = _address(value)
        copied = self.seen.get(address)
        if copied is not None:
            return True, copied
        if kind == "array":
            return self._array(value, address)
        if kind == "dict":
            return self._dict(value, address)
        return self._ref(value, address)

    def _array(self, proxy: Any, address: int) -> _Step:
        if not holds_containers(proxy.element_type):
            return True, _fill_array(proxy, address, None, self.seen)
        out: list[Any] = []
        self.seen[address] = out
        return False, self._fill_list(proxy, out)

    def _fill_list(self, proxy: Any, out: list[Any]) -> Generator[Any, Any, list[Any]]:
        for item in proxy:
            out.append(item if _kind(item) is _LEAF else (yield item))
        return out

    def _dict(self, proxy: Any, address: int) -> _Step:
        if not holds_containers(proxy.value_type):
            return True, _fill_dict(proxy, address, None, self.seen)
        out: dict[Any, Any] = {}
        self.seen[address] = out
        return False, self._fill_dict(proxy, out)

    def _fill_dict(self, proxy: Any, out: dict[Any, Any]) -> Generator[Any, Any, dict[Any, Any]]:
        for key, item in proxy.items():  # keys are of immutable types: no container inside
            out[key] = item if _kind(item) is _LEAF else (yield item)
        return out

    def _ref(self, proxy: Any, address: int) -> _Step:
        out: EastRef[Any] = EastRef(None)
        self.seen[address] = out
        return False, self._fill_ref(proxy, out)

    def _fill_ref(self, proxy: Any, out: EastRef[Any]) -> Generator[Any, Any, EastRef[Any]]:
        inner = proxy.value
        out.value = inner if _kind(inner) is _LEAF else (yield inner)
        return out

    def _struct(self, value: Any) -> Generator[Any, Any, Any]:
        pairs = dict(value.items())
        changed = False
        for key, field in pairs.items():
            if _kind(field) is not _LEAF:
                copied = yield field
                if copied is not field:
                    pairs[key] = copied
                    changed = True
        return EastStruct(pairs) if changed else value

    def _variant(self, value: Any) -> Generator[Any, Any, Any]:
        inner = yield value.value
        return value if inner is value.value else EastVariant(value.type, inner)


_KINDS: dict[type, str] = {}


def _kind(value: Any) -> str:
    """What :class:`_Copier` does with ``value``: ``leaf`` (keep it) or how to copy it."""
    cls = type(value)
    kind = _KINDS.get(cls)
    if kind is None:
        kind = _KINDS[cls] = _kind_of_class(cls)
    if kind == "ref" and not hasattr(value, "_c_ptr"):
        return _LEAF  # a plain Python cell: nothing of east-c in it
    return kind


def _kind_of_class(cls: type) -> str:
    for base, name in (
        (EastStruct, "struct"),
        (EastVariant, "variant"),
        (EastArray, "array"),
        (EastDict, "dict"),
        (EastSet, "set"),
        (EastRef, "ref"),
    ):
        if issubclass(cls, base):
            return name
    return _LEAF
