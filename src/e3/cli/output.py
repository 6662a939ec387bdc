"""Rendering for the CLI: plain text for people, ``--json`` for scripts."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from typing import Any, TextIO


def format_size(n: int | None) -> str:
    """Human-readable size: ``42 B``, ``1.5 KB``, ``3.2 MB``."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n_f = n / 1024
        if n_f < 1024 or unit == "TB":
            return f"{n_f:.1f} {unit}"
        n = int(n_f)
    return f"{n} B"


def jsonable(value: Any) -> Any:
    """Turn results (dataclasses, datetimes, paths, East types) into JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            out[f.name] = _field(f.name, getattr(value, f.name))
        return out
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _field(name: str, value: Any) -> Any:
    if name == "path" and isinstance(value, tuple):
        from e3.base.paths import format_keypath

        return format_keypath(value)
    if name == "type" and value is not None and not isinstance(value, str):
        from e3.codec.types import print_type

        return print_type(value)
    return jsonable(value)


class Output:
    """Where a command writes. Injectable streams make commands testable in-process."""

    def __init__(
        self, *, json_mode: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def line(self, text: str = "") -> None:
        """A line of human output (suppressed in ``--json`` mode)."""
        if not self.json_mode:
            print(text, file=self.stdout)

    def data(self, value: Any) -> None:
        """The command's result as JSON (only in ``--json`` mode)."""
        if self.json_mode:
            json.dump(jsonable(value), self.stdout, indent=2, ensure_ascii=False)
            self.stdout.write("\n")

    def flush(self) -> None:
        """Make what was written visible now (followers print as things happen)."""
        self.stdout.flush()

    def error(self, text: str) -> None:
        """An error line on stderr."""
        print(text, file=self.stderr)

    def write_bytes(self, data: bytes) -> None:
        """Raw bytes on stdout (e.g. ``get -f beast2``)."""
        self.stdout.flush()
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            self.stdout.write(data.decode("latin-1"))

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        """A left-aligned text table."""
        widths = [
            max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(headers)
        ]
        self.line("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
        for r in rows:
            self.line("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
