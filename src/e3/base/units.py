"""Durations and sizes as people type them: ``90s``, ``5m``, ``30d``; ``500M``, ``2GiB``."""

from __future__ import annotations

import re

from e3.errors import UsageError

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_duration(text: str, *, bare: str = "ms") -> float:
    """``90s``, ``5m``, ``2h``, ``1d``, ``2w`` → seconds; a bare number is in ``bare`` units.

    Raises:
        UsageError: not a duration.
    """
    m = _DURATION_RE.fullmatch(text.strip())
    if not m:
        raise UsageError(f"invalid duration {text[:40]!r}: use e.g. 90s, 5m, 2h, 30d")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2) or bare]


def parse_size(text: str) -> int:
    """``1000``, ``500K``, ``20M``, ``2G``, ``1.5GiB`` → bytes (powers of 1024).

    Raises:
        UsageError: not a size.
    """
    m = _SIZE_RE.fullmatch(text.strip())
    if not m:
        raise UsageError(f"invalid size {text[:40]!r}: use e.g. 500M, 2G, 1.5GiB")
    return int(float(m.group(1)) * 1024 ** _SIZE_POWERS[m.group(2).lower()])
