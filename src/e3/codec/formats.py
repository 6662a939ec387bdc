"""Reading and writing East values in the user-facing formats.

Formats: ``beast2`` (self-describing binary), ``east`` (text), ``json``
(East's type-directed JSON), and the table formats for ``Array<Struct>``
values: ``csv`` (:mod:`e3.codec.csv_io`), ``parquet`` and ``arrow`` (Arrow IPC;
:mod:`e3.codec.arrow`, needs the ``arrow`` extra). Output also has ``table``
(aligned text for a terminal) and ``type``. Beast2 is recognised by its real
magic (``0x89 'East' …``; the reference looked for ``0x42``), Parquet by its
``PAR1`` magic, everything else by explicit choice or file extension. Text
formats need a type: the dataset's declared type for ``set``, ``--type`` for
``convert`` — except ``.east`` literals whose text decides their type
(:mod:`e3.codec.infer`), and tables, whose data decides it (:func:`type_from_file`).

From Python, :func:`beast2_from_file` turns a file (a CSV with ``NA`` for
missing values, a Parquet table…) into the Beast2 bytes ``repo.dataset_set``
takes.
"""

from __future__ import annotations

import mmap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from e3.codec import beast2, text
from e3.codec.types import EastType, EastValue, fits, print_type, short_type
from e3.errors import DecodeError, StorageError, TypeMismatch, UsageError

if TYPE_CHECKING:  # the CSV codec is loaded by the calls that need it
    from e3.codec.csv_io import CsvOptions

Format = Literal["beast2", "east", "json", "csv", "parquet", "arrow"]
FORMATS: tuple[Format, ...] = ("beast2", "east", "json", "csv", "parquet", "arrow")
#: Formats a value can be written in (``table`` and ``type`` are for reading by people).
OUTPUTS = (*FORMATS, "table", "type")
#: Formats that hold only tables (``Array<Struct>``).
TABLE_FORMATS = ("csv", "parquet", "arrow")
_EXTENSIONS: dict[str, Format] = {
    ".beast2": "beast2",
    ".beast": "beast2",
    ".east": "east",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".arrows": "arrow",
}
PARQUET_MAGIC = b"PAR1"


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
    if bytes(data[:4]) == PARQUET_MAGIC:
        return "parquet"
    by_name = format_from_name(name)
    if by_name == "beast2":
        raise DecodeError(f"{name}: not Beast2 data (bad magic)")
    if by_name is not None:
        return by_name
    if name:
        raise UsageError(
            f"{name}: cannot tell the format from the extension "
            "(use .beast2, .east, .json, .csv, .parquet or .arrow, or give the format)"
        )
    return "east"


def read_value(
    data: bytes | Any,
    fmt: Format,
    east_type: EastType | None,
    *,
    where: str = "input",
    csv: CsvOptions | None = None,
) -> tuple[EastType, EastValue]:
    """Parse ``data`` (bytes, or an ``mmap`` of a file) in ``fmt``. Returns ``(type, value)``.

    For Beast2 the header's type is used and, if ``east_type`` is given, it
    must fit (equal, or a subtype): a mismatch names both types. Text formats
    are parsed with ``east_type`` and need it, except tables (CSV, Parquet,
    Arrow), whose type is then the data's. ``csv`` says how a CSV file is
    written (its ``columns`` also rename Parquet and Arrow columns).
    """
    if fmt in TABLE_FORMATS:
        from e3.codec.csv_io import CsvOptions

        return _read_table(data, fmt, east_type, where, csv or CsvOptions())
    if fmt == "beast2":
        try:
            return _read_beast2(data, east_type, where)
        except DecodeError as exc:
            raise DecodeError(f"{where}: {exc.message}") from exc
    try:
        content = bytes(data).decode("utf-8")
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
        return east_type, text.from_json(content, east_type)
    except (DecodeError, TypeMismatch) as exc:
        raise type(exc)(f"{where}: {exc.message}") from exc


def _read_table(
    data: Any, fmt: Format, east_type: EastType | None, where: str, options: CsvOptions
) -> tuple[EastType, EastValue]:
    if fmt != "csv":
        from e3.codec import arrow

        return arrow.read_table(data, fmt, east_type, columns=options.columns, where=where)
    from e3.codec import csv_io

    if east_type is None:
        from e3.codec.csv_infer import infer_csv_type

        try:
            east_type = infer_csv_type(data, options)
        except DecodeError as exc:
            raise DecodeError(f"{where}: {exc.message}") from exc
    try:
        return east_type, csv_io.read_csv(data, east_type, options, where=where)
    except TypeMismatch as exc:
        raise TypeMismatch(f"{where}: {exc.message}") from exc


def _read_beast2(data: bytes, east_type: EastType | None, where: str) -> tuple[EastType, EastValue]:
    found = beast2.read_type(data)
    if east_type is not None and not fits(found, east_type):
        raise TypeMismatch(
            f"{where}: type mismatch: expected {short_type(east_type)}, got {short_type(found)}"
        )
    target = east_type if east_type is not None else found
    return target, beast2.decode(data, target, trusted=False)


def render_value(
    value: EastValue | None,
    east_type: EastType,
    fmt: str,
    *,
    csv: CsvOptions | None = None,
    width: int = 100,
    rows: int = 20,
) -> bytes:
    """Bytes of ``value`` in ``fmt`` (one of :data:`OUTPUTS`; ``None`` is null).

    ``type`` prints the type, ``table`` an aligned text table ``width`` wide
    showing the first ``rows`` rows.
    """
    if fmt == "type":
        return (print_type(east_type) + "\n").encode()
    if fmt == "beast2":
        return beast2.encode(value, east_type)
    if fmt in ("parquet", "arrow"):
        import io

        sink = io.BytesIO()
        write_table_file(value, east_type, fmt, sink)
        return sink.getvalue()
    if value is None:
        return b"null\n"
    if fmt == "east":
        return (text.to_east(value, east_type) + "\n").encode()
    if fmt == "json":
        return (text.to_json(value, east_type) + "\n").encode()
    if fmt == "table":
        from e3.codec.table_view import render_table

        return render_table(value, east_type, width=width, rows=rows).encode()
    if fmt == "csv":
        from e3.codec.csv_io import write_csv

        return write_csv(value, east_type, csv)
    raise UsageError(f"unknown output format {fmt!r}: use one of {', '.join(OUTPUTS)}")


def write_value(
    value: EastValue | None,
    east_type: EastType,
    fmt: str,
    sink: Any,
    *,
    csv: CsvOptions | None = None,
    width: int = 100,
    rows: int = 20,
) -> None:
    """Write ``value`` in ``fmt`` to a binary file, a slice at a time for CSV, Parquet and Arrow.

    The same bytes as :func:`render_value`, without holding them all at once.
    """
    if value is not None and fmt == "csv":
        from e3.codec.csv_io import write_csv_to

        write_csv_to(value, east_type, csv, sink)
    elif fmt in ("parquet", "arrow"):
        write_table_file(value, east_type, fmt, sink)
    else:
        sink.write(render_value(value, east_type, fmt, csv=csv, width=width, rows=rows))


def write_table_file(value: EastValue | None, east_type: EastType, fmt: str, sink: Any) -> None:
    """Write a table value as Parquet or Arrow IPC to ``sink`` (a path or a binary file)."""
    if value is None:
        raise UsageError(f"null has no {fmt} form (it is not a table)")
    from e3.codec import arrow

    arrow.write_table(value, east_type, fmt, sink)


# ── files ──────────────────────────────────────────────────────────────────


def read_file(
    path: str | Path,
    east_type: EastType | None = None,
    *,
    fmt: str | None = None,
    csv: CsvOptions | None = None,
    where: str | None = None,
) -> tuple[EastType, EastValue]:
    """Read a value from a file: ``(type, value)``.

    The format is ``fmt``, else the Beast2 or Parquet magic, else the
    extension. A CSV file is mapped, not read into memory; a Parquet or Arrow
    file is read a record batch at a time. A file that clearly cannot be held
    in memory is refused before it is read (:mod:`e3.codec.memory`).

    Raises:
        UsageError: the file does not exist, or its format cannot be told.
        RequestTooLarge: it is too large for this machine's memory.
        DecodeError, TypeMismatch: its content does not fit the type.
    """
    from e3.codec.memory import check_fits

    p = Path(path)
    where = where or str(path)
    try:
        with p.open("rb") as f:
            size = p.stat().st_size
            head = f.read(16)
            chosen = detect_format(head, explicit=fmt, name=str(path))
            check_fits(size, chosen, where)
            if chosen in ("parquet", "arrow"):
                return read_value(str(p), chosen, east_type, where=where, csv=csv)
            if size == 0:
                return read_value(b"", chosen, east_type, where=where, csv=csv)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                data: Any = m if chosen == "csv" else m[:]
                options = _tsv(p, csv)
                return read_value(data, chosen, east_type, where=where, csv=options)
    except FileNotFoundError:
        raise UsageError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a value file") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def csv_options(
    *,
    delimiter: str = ",",
    null_strings: Sequence[str] = (),
    header: bool = True,
    columns: Mapping[str, str] | None = None,
) -> CsvOptions:
    """:class:`~e3.codec.csv_io.CsvOptions` from keyword arguments (checked)."""
    from e3.codec.csv_io import CsvOptions

    options = CsvOptions(delimiter, tuple(null_strings), header, dict(columns or {}))
    options.check()
    return options


def beast2_from_file(
    path: str | Path,
    east_type: EastType | None = None,
    *,
    format: str | None = None,
    delimiter: str = ",",
    null_strings: Sequence[str] = (),
    header: bool = True,
    columns: Mapping[str, str] | None = None,
) -> bytes:
    """The canonical Beast2 bytes of a file's value, for ``repo.dataset_set``.

    Reads CSV as people write it (``null_strings=["NA"]`` adds texts that mean
    a missing value in Option fields, besides the empty cell; ``delimiter``,
    ``header=False`` for positional columns, ``columns={"Body Mass (g)":
    "body_mass_g"}`` for headers that are not field names), Parquet and Arrow
    tables, and ``.east``/JSON/Beast2 values. Give ``east_type`` as the
    dataset's declared type (``repo.dataset_status(ws, path).type``) so the
    value is checked against it; without it a table's type is its data's.

    Example::

        data = e3.beast2_from_file("penguins.csv", status.type, null_strings=["NA"])
        repo.dataset_set("ws", ["inputs", "penguins"], data)
    """
    options = csv_options(
        delimiter=delimiter, null_strings=null_strings, header=header, columns=columns
    )
    t, value = read_file(path, east_type, fmt=format, csv=options)
    return beast2.encode(value, t)


def type_from_file(
    path: str | Path,
    *,
    format: str | None = None,
    delimiter: str = ",",
    null_strings: Sequence[str] = (),
    header: bool = True,
    columns: Mapping[str, str] | None = None,
) -> EastType:
    """The East type of a sample file's data, to declare a package input with.

    A table's columns are typed from their cells (CSV) or Arrow types
    (Parquet, Arrow); a column with a missing value is an Option. Beast2 files
    say their type; ``.east`` literals are inferred where the text decides.

    Example::

        penguins = e3.input("penguins", e3.type_from_file("penguins.csv", null_strings=["NA"]))
    """
    options = csv_options(
        delimiter=delimiter, null_strings=null_strings, header=header, columns=columns
    )
    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise UsageError(f"file not found: {path}") from None
    fmt = detect_format(head, explicit=format, name=str(path))
    if fmt in ("parquet", "arrow"):
        from e3.codec import arrow

        return arrow.infer_type(str(p), fmt, where=str(path))
    if fmt == "beast2":
        return beast2.read_type(p.read_bytes())
    if fmt == "csv":
        from e3.codec.csv_infer import infer_csv_type

        try:
            return infer_csv_type(p.read_bytes(), _tsv(p, options))
        except DecodeError as exc:
            raise DecodeError(f"{path}: {exc.message}") from exc
    return read_file(p, None, fmt=fmt, csv=options)[0]


def _tsv(path: Path, options: CsvOptions | None) -> CsvOptions | None:
    """A ``.tsv`` file's cells are separated by tabs unless a delimiter was chosen."""
    if path.suffix.lower() != ".tsv":
        return options
    from e3.codec.csv_io import CsvOptions

    options = options or CsvOptions()
    if options.delimiter == ",":
        return CsvOptions("\t", options.null_strings, options.header, options.columns)
    return options
