"""Validation of every user-chosen name that ends up in a file path.

Workspace, package and version names become directory and file names in the
repository, so they are checked here once, before any I/O, with errors that
say what is allowed. Hashes and execution ids get the same treatment.
Pure: no I/O, no e3 imports besides :mod:`e3.errors`.
"""

from __future__ import annotations

import os
import re
import time
from typing import NewType

from e3.errors import InvalidName

#: Lowercase hex SHA-256 of an object's exact bytes.
ObjectHash = NewType("ObjectHash", str)

_HASH_RE = re.compile(r"[0-9a-f]{64}")
_WORKSPACE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,127}")
_PACKAGE_RE = re.compile(r"(@[a-z0-9][a-z0-9._-]{0,99}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}")
_UUID7_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_TASK_RE = re.compile(r"[^\x00-\x1f/\\`]{1,200}")

#: Longest dataset field name (UTF-8 bytes) that still leaves room in a file name.
MAX_FIELD_BYTES = 200


def check_hash(value: str, what: str = "hash") -> ObjectHash:
    """Return ``value`` as an :data:`ObjectHash` or raise :class:`InvalidName`."""
    if not isinstance(value, str) or not _HASH_RE.fullmatch(value):
        raise InvalidName(f"invalid {what} {value!r}: expected 64 lowercase hex digits")
    return ObjectHash(value)


def is_hash(value: str) -> bool:
    """Whether ``value`` has the shape of an object hash."""
    return bool(_HASH_RE.fullmatch(value))


def check_workspace_name(name: str) -> str:
    """Workspace names become file names and the first segment of CLI paths (``ws.a.b``).

    Dots are refused because they separate path segments and would clash with the
    ``<ws>.lock`` / ``<ws>.beast2`` files beside the workspace directory.
    """
    if not _WORKSPACE_RE.fullmatch(name):
        raise InvalidName(
            f"invalid workspace name {name!r}: use letters, digits, '_' and '-' "
            "(at most 128, not starting with '-')"
        )
    return name


def check_package_name(name: str) -> str:
    """Package names (optionally ``@scope/name``) become ``packages/<name>/`` directories."""
    if not _PACKAGE_RE.fullmatch(name) or ".." in name:
        raise InvalidName(
            f"invalid package name {name!r}: use letters, digits, '.', '_' and '-', "
            "optionally prefixed by '@scope/'"
        )
    return name


def check_version(version: str) -> str:
    """Versions become file names under ``packages/<name>/``."""
    if not _VERSION_RE.fullmatch(version) or ".." in version:
        raise InvalidName(
            f"invalid package version {version!r}: use letters, digits, '.', '+', '_' and '-'"
        )
    return version


def check_task_name(name: str) -> str:
    """Task names appear in paths (``.tasks.<name>``) and logs; refuse control characters."""
    if not _TASK_RE.fullmatch(name):
        raise InvalidName(
            f"invalid task name {name!r}: 1-200 characters, no control characters, '/', '\\' or '`'"
        )
    return name


def check_field_name(name: str) -> str:
    """Dataset field names may be any text except empty, NUL-containing or very long."""
    if not name or "\x00" in name or len(name.encode("utf-8", "surrogatepass")) > MAX_FIELD_BYTES:
        raise InvalidName(
            f"invalid dataset field name {name!r}: must be 1-{MAX_FIELD_BYTES} bytes without NUL"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidName(f"invalid dataset field name {name!r}: not valid Unicode") from exc
    return name


def parse_package_spec(spec: str) -> tuple[str, str | None]:
    """Split ``name`` or ``name@version`` (``@scope/name@1.0`` too) into its parts."""
    at = spec.rfind("@")
    if at > 0:
        name, version = spec[:at], spec[at + 1 :]
        return check_package_name(name), check_version(version)
    return check_package_name(spec), None


def is_execution_id(value: str) -> bool:
    """Whether ``value`` looks like an execution/run id (a UUIDv7)."""
    return bool(_UUID7_RE.fullmatch(value))


def new_uuid7() -> str:
    """A fresh UUIDv7: ms timestamp first, so ids sort in creation order."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = (rand >> 62) & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_time(value: str) -> float:
    """When a UUIDv7 was made (seconds since the epoch), from its timestamp bits."""
    return int(value.replace("-", "")[:12], 16) / 1000.0
