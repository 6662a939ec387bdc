"""Trusting canonical outputs without decoding them again: headers checked once per type.

Every stored value must be e3's canonical Beast2 of a value of its dataset's
declared type (:mod:`e3.codec.beast2`): the engine checks a task's output by
decoding it with the declared type and encoding it again, about a hundred
microseconds for a small value, which is most of what a trivial task costs.

The warm East worker already encodes a function's result canonically (with the
function's own output type) and says so (``RunResult.canonical``). Canonical
bytes are a function of the type and the value, and their header (magic, type
section, source map) of the type alone. So once the full check has confirmed one
such output, with header ``H``, as canonical for the declared type ``T``, ``H``
is ``T``'s canonical header, and any later output flagged canonical that starts
with ``H`` is the canonical encoding of a value of ``T`` too: it is taken as it
is. Anything else (an unknown header, an output not flagged, a runner that wrote
a file) still goes through the full check.
"""

from __future__ import annotations

from e3.base.paths import DatasetPath
from e3.codec.beast2 import MAGIC_V5, header_size
from e3.codec.types import EastType, canonical
from e3.errors import DecodeError


class TrustedHeaders:
    """Headers confirmed canonical for a declared type (one table per run)."""

    def __init__(self) -> None:
        self._type_of: dict[DatasetPath, int] = {}
        self._types: dict[EastType, int] = {}
        self._confirmed: set[tuple[int, bytes]] = set()

    def _key(self, path: DatasetPath, declared: EastType, data: bytes) -> tuple[int, bytes] | None:
        if not data.startswith(MAGIC_V5):
            return None
        try:
            end = header_size(data)
        except DecodeError:
            return None
        k = self._type_of.get(path)
        if k is None:
            k = self._type_of[path] = self._types.setdefault(canonical(declared), len(self._types))
        return k, data[:end]

    def check(self, path: DatasetPath, declared: EastType, data: bytes) -> bytes | None:
        """``data`` itself if its header is confirmed for ``path``'s declared type, else ``None``.

        Only for bytes a runner flagged canonical (see the module docstring).
        """
        key = self._key(path, declared, data)
        return data if key is not None and key in self._confirmed else None

    def confirm(self, path: DatasetPath, declared: EastType, data: bytes) -> None:
        """The full check found ``data`` (flagged canonical) canonical for the declared type."""
        key = self._key(path, declared, data)
        if key is not None:
            self._confirmed.add(key)
