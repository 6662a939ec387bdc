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

from collections.abc import Generator
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

    Values without such containers come back as the very same object; with
    ``east_type`` known, a type that cannot hold one is not even walked.
    """
    if east_type is not None and not holds_containers(east_type):
        return value
    return _Copier().copy(value)


_Step = tuple[bool, Any]  # (True, the copy) or (False, a generator building it)


class _Copier:
    """One walk over one value; ``seen`` maps an east-c address to its copy.

    The walk keeps its own stack (a generator per container still being
    filled) rather than Python's: decoded values can nest far deeper than the
    interpreter's recursion limit (e3 refuses over-deep ones later, with a
    message that says so).
    """

    def __init__(self) -> None:
        self.seen: dict[int, Any] = {}

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
        kind = _kind_of(type(value))
        if kind is None:
            return True, value
        if kind == "ref" and not hasattr(value, "_c_ptr"):
            return True, value  # a plain Python cell: nothing of east-c in it
        if kind in ("array", "dict", "ref"):
            address = int(getattr(value, "_c_ptr", 0)) or id(value)
            copied = self.seen.get(address)
            if copied is not None:
                return True, copied
            return getattr(self, "_" + kind)(value, address)  # type: ignore[no-any-return]
        if kind == "set":
            return True, set(value)  # elements are of immutable types: no container inside
        if kind == "struct":
            if all(_kind_of(type(field)) is None for field in value.values()):
                return True, value  # the common row of scalars: nothing to walk
            return False, self._struct(value)
        return False, self._variant(value)

    def _array(self, proxy: Any, address: int) -> _Step:
        out: list[Any] = []
        self.seen[address] = out
        if not holds_containers(proxy.element_type):
            out.extend(proxy)
            return True, out
        return False, self._fill_list(proxy, out)

    def _fill_list(self, proxy: Any, out: list[Any]) -> Generator[Any, Any, list[Any]]:
        for item in proxy:
            out.append((yield item))
        return out

    def _dict(self, proxy: Any, address: int) -> _Step:
        out: dict[Any, Any] = {}
        self.seen[address] = out
        if not holds_containers(proxy.value_type):
            out.update(proxy.items())
            return True, out
        return False, self._fill_dict(proxy, out)

    def _fill_dict(self, proxy: Any, out: dict[Any, Any]) -> Generator[Any, Any, dict[Any, Any]]:
        for key, item in proxy.items():  # keys are of immutable types: no container inside
            out[key] = yield item
        return out

    def _ref(self, proxy: Any, address: int) -> _Step:
        out: EastRef[Any] = EastRef(None)
        self.seen[address] = out
        return False, self._fill_ref(proxy, out)

    def _fill_ref(self, proxy: Any, out: EastRef[Any]) -> Generator[Any, Any, EastRef[Any]]:
        out.value = yield proxy.value
        return out

    def _struct(self, value: Any) -> Generator[Any, Any, Any]:
        pairs = {}
        changed = False
        for key, field in value.items():
            copied = yield field
            pairs[key] = copied
            changed = changed or copied is not field
        return EastStruct(pairs) if changed else value

    def _variant(self, value: Any) -> Generator[Any, Any, Any]:
        inner = yield value.value
        return value if inner is value.value else EastVariant(value.type, inner)


_KINDS: dict[type, str | None] = {}


def _kind_of(cls: type) -> str | None:
    """What :class:`_Copier` does with values of class ``cls`` (cached: ABC checks are slow)."""
    try:
        return _KINDS[cls]
    except KeyError:
        pass
    kind: str | None = None
    for base, name in (
        (EastStruct, "struct"),
        (EastVariant, "variant"),
        (EastArray, "array"),
        (EastDict, "dict"),
        (EastSet, "set"),
        (EastRef, "ref"),
    ):
        if issubclass(cls, base):
            kind = name
            break
    _KINDS[cls] = kind
    return kind
