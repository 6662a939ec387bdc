"""Reading and writing East values in the user-facing formats.

Formats: ``beast2`` (self-describing binary), ``east`` (text), ``json``
(East's type-directed JSON) and ``csv`` (``Array<Struct>`` only, read-only
here). Beast2 is recognised by its real magic (``0x89 'East' …``; the
reference looked for ``0x42``), everything else by explicit choice or file
extension. Text formats need a type: the dataset's declared type for ``set``,
``--type`` for ``convert`` — except ``.east`` literals whose text decides their
type (:mod:`e3.codec.infer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from e3.codec import beast2, text
from e3.codec.types import EastType, EastValue, fits, print_type, short_type
from e3.errors import DecodeError, TypeMismatch, UsageError

Format = Literal["beast2", "east", "json", "csv"]
FORMATS: tuple[Format, ...] = ("beast2", "east", "json", "csv")
_EXTENSIONS: dict[str, Format] = {
    ".beast2": "beast2",
    ".beast": "beast2",
    ".east": "east",
    ".json": "json",
    ".csv": "csv",
}


def format_from_name(name: str | None) -> Format | None:
    """Format implied by a file name's extension (``None`` if unknown)."""
    if not name:
        return None
    return _EXTENSIONS.get(Path(name).suffix.lower())


def detect_format(data: bytes, *, explicit: str | None = None, name: str | None = None) -> Format:
    """Decide the input format: explicit choice, then Beast2 magic, then extension.

    Raises:
        UsageError: nothing tells the format.
    """
    if explicit:
        if explicit not in FORMATS:
            raise UsageError(f"unknown format {explicit!r}: use one of {', '.join(FORMATS)}")
        return explicit
    if beast2.is_beast2(data):
        return "beast2"
    by_name = format_from_name(name)
    if by_name == "beast2":
        raise DecodeError(f"{name}: not Beast2 data (bad magic)")
    if by_name is not None:
        return by_name
    if name:
        raise UsageError(
            f"{name}: cannot tell the format from the extension "
            "(use .beast2, .east, .json or .csv, or give the format)"
        )
    return "east"


def read_value(
    data: bytes, fmt: Format, east_type: EastType | None, *, where: str = "input"
) -> tuple[EastType, EastValue]:
    """Parse ``data`` in ``fmt``. Returns ``(type, value)``.

    For Beast2 the header's type is used and, if ``east_type`` is given, it
    must fit (equal, or a subtype): a mismatch names both types. Text formats
    are parsed with ``east_type`` and need it.
    """
    if fmt == "beast2":
        try:
            return _read_beast2(data, east_type, where)
        except DecodeError as exc:
            raise DecodeError(f"{where}: {exc.message}") from exc
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{where}: not valid UTF-8 text (byte {exc.start})") from exc
    if east_type is None and fmt == "east":
        from e3.codec.infer import AmbiguousType, infer_type

        try:
            east_type = infer_type(content, where=where)
        except AmbiguousType as exc:
            raise UsageError(f"{exc.message}: give its type with --type") from exc
    if east_type is None:
        raise UsageError(f"{where}: reading {fmt} needs a type (give --type, e.g. --type .Integer)")
    try:
        if fmt == "east":
            return east_type, text.from_east(content, east_type)
        if fmt == "json":
            return east_type, text.from_json(content, east_type)
        return east_type, text.from_csv(content, east_type)
    except (DecodeError, TypeMismatch) as exc:
        raise type(exc)(f"{where}: {exc.message}") from exc


def _read_beast2(data: bytes, east_type: EastType | None, where: str) -> tuple[EastType, EastValue]:
    found = beast2.read_type(data)
    if east_type is not None and not fits(found, east_type):
        raise TypeMismatch(
            f"{where}: type mismatch: expected {short_type(east_type)}, got {short_type(found)}"
        )
    target = east_type if east_type is not None else found
    return target, beast2.decode(data, target, trusted=False)


def render_value(
    value: EastValue | None, east_type: EastType, fmt: Format | Literal["type"]
) -> bytes:
    """Bytes of ``value`` in ``fmt`` (``type`` prints the type; ``None`` is null)."""
    if fmt == "type":
        return (print_type(east_type) + "\n").encode()
    if fmt == "beast2":
        return beast2.encode(value, east_type)
    if value is None:
        return b"null\n"
    if fmt == "east":
        return (text.to_east(value, east_type) + "\n").encode()
    if fmt == "json":
        return (text.to_json(value, east_type) + "\n").encode()
    return text.to_csv(value, east_type).encode()
