"""Version ordering, so that ``name`` without ``@version`` means the highest version.

Versions compare like semantic versions: numeric release parts numerically
(``1.10.0 > 1.9.0``), a pre-release below its release (``1.0.0-rc.1 < 1.0.0``),
pre-release identifiers numerically when numeric and lexically otherwise, build
metadata (``+…``) ignored except as a final tie-break. Versions that are not of
that shape sort below all that are, among themselves by natural order.
Pure: no I/O.
"""

from __future__ import annotations

import re

_SEMVER_RE = re.compile(r"v?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.+_-]+))?")
_CHUNK_RE = re.compile(r"(\d+)")

VersionKey = tuple[object, ...]


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(c)) if c.isdigit() else (1, c) for c in _CHUNK_RE.split(text) if c)


def version_key(version: str) -> VersionKey:
    """Sort key implementing the ordering described in the module docstring."""
    m = _SEMVER_RE.fullmatch(version)
    if not m:
        return (0, _natural(version), version)
    release = tuple(int(p) for p in m.group(1).split("."))
    release = release + (0,) * max(0, 3 - len(release))
    pre = m.group(2)
    if pre is None:
        pre_key: tuple[object, ...] = (1,)
    else:
        ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
        pre_key = (0, ids)
    return (1, release, pre_key, version)


def highest(versions: list[str]) -> str | None:
    """The highest version of a list (``None`` if empty)."""
    return max(versions, key=version_key) if versions else None
