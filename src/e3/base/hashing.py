"""SHA-256 identities: objects, and the execution cache key.

Object identity is the SHA-256 of the exact stored bytes (which the codec
keeps canonical). A task execution is keyed by the task object's hash and
:func:`inputs_hash` of its ordered input hashes, as in the reference, so a
cache entry computed by either implementation is found by the other.
Pure: stdlib only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from e3.base.names import ObjectHash


def object_hash(data: bytes | bytearray | memoryview) -> ObjectHash:
    """Hex SHA-256 of ``data``."""
    return ObjectHash(hashlib.sha256(data).hexdigest())


def inputs_hash(input_hashes: Iterable[str]) -> str:
    """SHA-256 of the ordered input hashes joined by NUL (empty list: SHA-256 of "")."""
    return hashlib.sha256("\0".join(input_hashes).encode("utf-8")).hexdigest()
