"""Refusing a value before reading it when this machine clearly cannot hold it.

e3 holds a value whole while it stores it: the canonical Beast2 object is one
whole-value encoding, which east-py writes only from a complete value (its
streaming writers produce the paged form, whose bytes, and so hash, differ).
A value in memory is many times its file: east-py keeps each cell of a table
as a C value (about 90 bytes a cell, measured), and a compressed file
(Parquet, Beast2) expands further. So before reading, the file's size times
a *low* estimate of that expansion is compared with the memory Linux says is
available (``MemAvailable`` in ``/proc/meminfo``); only a file that could not
fit even then is refused, with one line saying so.
"""

from __future__ import annotations

from pathlib import Path

from e3.errors import RequestTooLarge

#: Low estimates of (peak memory while storing) / (file size), by format.
#: Measured ``e3 set`` of a 1,000,000-row, 8-column table (benchmarks/formats.py):
#: CSV 78 MB → 0.98 GB peak (13x), Parquet 24 MB → 1.15 GB (48x), Beast2 26 MB →
#: 0.97 GB (37x); a 1.1 GB CSV → 12.9 GB (12x). A third of those or less, so
#: only files that clearly cannot fit are refused.
EXPANSION = {"csv": 4, "json": 2, "east": 2, "beast2": 16, "parquet": 16, "arrow": 4}

_MEMINFO = Path("/proc/meminfo")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now, or ``None`` if unknown."""
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(size: int, fmt: str, where: str, *, available: int | None = None) -> None:
    """Refuse a ``size``-byte input of ``fmt`` that clearly cannot be held in memory.

    Raises:
        RequestTooLarge: the low estimate exceeds the available memory.
    """
    avail = available if available is not None else available_memory()
    if avail is None:
        return
    need = size * EXPANSION.get(fmt, 2)
    if need > avail:
        raise RequestTooLarge(
            f"{where}: {_gib(size)} of {fmt} needs at least {_gib(need)} of memory to load, "
            f"and this machine has {_gib(avail)} available"
        )


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"
