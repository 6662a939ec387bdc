"""CSV as people write it: missing values, delimiters, headers that are not field names.

east-py's CSV reader (east-c) does the parsing: it is many times faster than
Python's ``csv`` module and builds C-backed values directly. This module adds
what the reader leaves to its caller:

* **Missing values.** In an ``Option`` field an empty cell, and any text given
  in :attr:`CsvOptions.null_strings` (``NA``, ``NaN``, ``null``…), is
  ``none``. Fields that are not Options are read literally: an empty cell in a
  String field is the empty string, and in any other field it is an error that
  says the field cannot be missing. east-c applies its null strings to every
  column, so a file whose required String fields hold such texts is read in two
  passes (the Option fields with the null strings, the String fields without)
  and the rows are zipped by a compiled East function, all in C.
* **Headers.** The header is parsed here, renamed by :attr:`CsvOptions.columns`
  and checked against the struct's fields before east-c sees it; a file
  without a header gets one naming the fields in order.
* **Errors** name the line, the row, the column, the cell's text and the
  field's type, in one line, instead of east-c's column index.
* **Size.** The body is decoded in chunks cut at record boundaries, so the
  text never needs to be held as one string beside the value it becomes.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from east import East
from east.serialization.csv import csv_parse_config, csv_serialize_config, decode_csv_for
from east.serialization.csv import encode_csv_for as _encode_csv_for

from e3.codec._datetimes import exact_datetimes
from e3.codec.csv_guard import first_misread
from e3.codec.tabular import describe, is_option, option_inner, rows, table_fields
from e3.codec.types import ArrayType, EastType, EastValue, StructType, type_kind
from e3.errors import DecodeError, TypeMismatch, UsageError

#: Body bytes decoded per east-c call (cut at the next record boundary).
CHUNK_BYTES = 32 << 20
#: Rows encoded per east-c call when writing.
WRITE_ROWS = 65_536
#: Field types a CSV cell can hold (and Options of them).
CELL_KINDS = ("Integer", "Float", "String", "Boolean", "DateTime", "Blob", "Null")
#: Kinds read without null strings when not in an Option: their cells are literal
#: (an empty cell is the empty string, or null).
LITERAL_KINDS = ("String", "Null")
#: Texts that often mean "missing": named in the hint when one fails to parse.
_MISSING_LOOKALIKES = {"NA", "N/A", "NaN", "nan", "null", "NULL", "None", "-", "?", ".", "#N/A"}


@dataclass(frozen=True)
class CsvOptions:
    """How a CSV file is written.

    Attributes:
        delimiter: the one-character field separator.
        null_strings: texts that mean a missing value in ``Option`` fields, besides
            the empty cell (which always does).
        header: whether the first record names the columns; without one,
            columns are the struct's fields in order.
        columns: header name → field name, for headers that are not the fields' names.
    """

    delimiter: str = ","
    null_strings: tuple[str, ...] = ()
    header: bool = True
    columns: Mapping[str, str] = field(default_factory=dict)

    def missing(self) -> list[str]:
        """Every text that is ``none`` in an Option field: the empty cell first."""
        out = [""]
        out.extend(s for s in self.null_strings if s not in out)
        return out

    def check(self) -> None:
        """Refuse options east-c cannot honour.

        Raises:
            UsageError: naming the option.
        """
        d = self.delimiter
        if len(d) != 1 or d in '"\r\n' or ord(d) == 0:
            raise UsageError(
                f"--delimiter must be one character other than a quote or newline, got {d!r}"
            )
        if self.columns and not self.header:
            raise UsageError("--column renames header columns; it cannot be used with --no-header")
        for s in self.null_strings:
            if any(c in s for c in "\r\n\0") or d in s or '"' in s:
                raise UsageError(f"--null-string {s!r} cannot hold a newline, quote or delimiter")


def struct_fields(east_type: EastType) -> list[tuple[str, EastType]]:
    """``(name, type)`` of each field of an ``Array<Struct>`` type, checked for CSV.

    Raises:
        TypeMismatch: not an Array of Struct, or a field a CSV cell cannot hold.
    """
    fields = table_fields(east_type, "CSV")
    for name, t in fields:
        if type_kind(option_inner(t)) not in CELL_KINDS:
            raise TypeMismatch(
                f"field {name!r} is {describe(t)}: a CSV cell holds "
                f"{', '.join(CELL_KINDS)} or an Option of one"
            )
    return fields


# ── reading ────────────────────────────────────────────────────────────────


def read_csv(
    data: bytes | memoryview | Any,
    east_type: EastType,
    options: CsvOptions | None = None,
    *,
    where: str = "input",
) -> EastValue:
    """Read CSV bytes (or an ``mmap``) as a C-backed ``Array<Struct>`` value.

    Raises:
        DecodeError: a cell, the header or the text is wrong (the message says where).
        TypeMismatch: the type is not an Array of Struct of CSV-able fields.
        UsageError: the options are inconsistent.
    """
    options = options or CsvOptions()
    options.check()
    fields = struct_fields(east_type)
    reader = _Reader(data, east_type, fields, options, where)
    return reader.read()


@dataclass
class _Chunk:
    text: bytes  # body records only (no header)
    first_line: int  # file line number of its first record
    first_row: int  # rows decoded before it
    rows_after: int = 0  # rows decoded up to its end (set once decoded)


class _Reader:
    def __init__(
        self,
        data: Any,
        east_type: EastType,
        fields: list[tuple[str, EastType]],
        options: CsvOptions,
        where: str,
    ) -> None:
        self.data = data
        self.type = east_type
        self.fields = fields
        self.types = dict(fields)
        self.options = options
        self.where = where
        self.original: dict[str, str] = {}  # field → the header's name for it
        self.columns: list[str] = []  # the fields (or other names) of the columns, in order

    def read(self) -> EastValue:
        head_end, header_line = self._header()
        result: EastValue | None = None
        for chunk in self._chunks(head_end):
            part = self._decode_chunk(header_line, chunk)
            if result is None:
                result = part
            else:
                result.extend(part)
        if result is None:
            result = decode_csv_for(self.type)(header_line)  # an empty array, C-backed
        return result

    # header ---------------------------------------------------------------

    def _header(self) -> tuple[int, bytes]:
        """Where the body starts, and the header line east-c is given instead."""
        names = [n for n, _ in self.fields]
        if not self.options.header:
            self.original = {n: f"#{i + 1}" for i, n in enumerate(names)}
            self.columns = names
            return 0, self._line(names)
        end = _cut(self.data, 0, 0)
        raw = bytes(self.data[:end])
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{self.where}: the header is not UTF-8 text") from exc
        if "\0" in text:
            raise DecodeError(f"{self.where}: the header holds a NUL byte (not CSV text)")
        try:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.options.delimiter)
            rows = list(reader)
        except csv.Error as exc:
            raise DecodeError(f"{self.where}: cannot read the header: {exc}") from exc
        header = rows[0] if rows else []
        if not header:
            raise DecodeError(f"{self.where}: no header line (use --no-header for a file without)")
        renamed = self._rename(header)
        missing = [n for n in names if n not in renamed]
        if missing:
            raise DecodeError(
                f"{self.where}: no column for field(s) {', '.join(map(repr, missing))} "
                f"(the header has {_listing(header)}; rename with --column NAME=FIELD)"
            )
        self.columns = renamed
        return end, self._line(renamed)

    def _rename(self, header: list[str]) -> list[str]:
        mapping = dict(self.options.columns)
        unknown = [k for k in mapping if k not in header]
        if unknown:
            raise UsageError(
                f"--column {unknown[0]}=…: the header has no column {unknown[0]!r} "
                f"(it has {_listing(header)})"
            )
        renamed = [mapping.get(h, h) for h in header]
        for h, r in zip(header, renamed, strict=True):
            if r in self.types:
                if r in self.original:
                    raise DecodeError(f"{self.where}: two columns for field {r!r}")
                self.original[r] = h
        return renamed

    def _line(self, names: list[str]) -> bytes:
        out = io.StringIO()
        csv.writer(out, delimiter=self.options.delimiter, lineterminator="\n").writerow(names)
        return out.getvalue().encode()

    # body -----------------------------------------------------------------

    def _chunks(self, start: int) -> Iterator[_Chunk]:
        """The body in pieces of about :data:`CHUNK_BYTES`, each whole records."""
        size = len(self.data)
        line = 1 + bytes(self.data[:start]).count(b"\n")
        rows = 0
        pos = start
        while pos < size:
            end = _cut(self.data, pos, CHUNK_BYTES)
            text = bytes(self.data[pos:end])
            nul = text.find(b"\0")
            if nul >= 0:
                raise DecodeError(f"{self.where}: a NUL byte at offset {pos + nul} (not CSV text)")
            try:
                text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"{self.where}: not UTF-8 text (byte {pos + exc.start})") from exc
            chunk = _Chunk(text, line, rows)
            yield chunk
            line += text.count(b"\n")
            rows = chunk.rows_after
            pos = end

    def _decode_chunk(self, header: bytes, chunk: _Chunk) -> EastValue:
        misread = first_misread(chunk.text, self.columns, self.types, self.options.delimiter)
        if misread is not None:
            line, row, name, cell, why = misread
            raise DecodeError(
                f"{self.where}: line {chunk.first_line + line - 1}, row {chunk.first_row + row}, "
                f"column {self.original.get(name, name)!r} ({describe(self.types[name])}): "
                f"{cell!r} {why}"
            )
        text = header + chunk.text
        optional = [n for n, t in self.fields if is_option(t)]
        nulls = self.options.missing() if optional else []
        try:
            part = _decode(self.type, text, nulls, self.options.delimiter)
        except ValueError as exc:
            field_name = _null_in_required_string(str(exc), self.types)
            if field_name is None:
                raise self._error(str(exc), chunk) from exc
            part = self._decode_split(text, chunk)
        chunk.rows_after = chunk.first_row + len(part)
        return part

    def _decode_split(self, text: bytes, chunk: _Chunk) -> EastValue:
        """Option (and other) fields with the null strings, String and Null fields without."""
        literal = [(n, t) for n, t in self.fields if type_kind(t) in LITERAL_KINDS]
        rest = [(n, t) for n, t in self.fields if type_kind(t) not in LITERAL_KINDS]
        try:
            d = self.options.delimiter
            strings = _decode(ArrayType(StructType(literal)), text, [], d)
            if not rest:
                return strings
            others = _decode(ArrayType(StructType(rest)), text, self.options.missing(), d)
        except ValueError as exc:
            raise self._error(str(exc), chunk) from exc
        return _zipper(self.type)(others, strings)

    def _error(self, message: str, chunk: _Chunk) -> DecodeError:
        return DecodeError(_explain(message, chunk, self))


def _decode(east_type: EastType, text: bytes, nulls: list[str], delimiter: str) -> EastValue:
    config = csv_parse_config(null_strings=nulls, delimiter=delimiter)
    return decode_csv_for(east_type, config)(text)


def _cut(data: Any, start: int, limit: int) -> int:
    """The end of the first record that ends at or after ``start + limit``.

    ``start`` is the start of a record. A newline inside quotes does not end a
    record: a record ends at a newline after an even number of quote characters
    since ``start`` (a doubled quote counts twice, so it never changes the parity).
    """
    size = len(data)
    target = min(start + limit, size)
    quotes = bytes(data[start:target]).count(b'"')
    cursor = target
    while True:
        nl = data.find(b"\n", cursor)
        if nl < 0:
            return size
        quotes += bytes(data[cursor:nl]).count(b'"')
        if quotes % 2 == 0:
            return int(nl) + 1
        cursor = nl + 1


_ERROR = re.compile(
    r"^(?:CSV error: )?(?P<msg>.*?)(?: at row (?P<row>\d+), column (?P<col>\d+)"
    r"(?: \((?P<name>.*)\))?)?$",
    re.DOTALL,
)
_NULL_REQUIRED = re.compile(r"null value for required field '(?P<f>.*)'")


def _null_in_required_string(message: str, types: dict[str, EastType]) -> str | None:
    m = _ERROR.match(message.strip())
    if m is None:
        return None
    n = _NULL_REQUIRED.match(m.group("msg"))
    if (
        n is None
        or n.group("f") not in types
        or type_kind(types[n.group("f")]) not in LITERAL_KINDS
    ):
        return None
    return n.group("f")


def _explain(message: str, chunk: _Chunk, reader: _Reader) -> str:
    """east-c's message, as one line naming the line, row, column, cell and type."""
    first = message.strip().splitlines()[0] if message.strip() else "cannot read the CSV"
    m = _ERROR.match(first)
    if m is None or m.group("row") is None:
        msg = m.group("msg") if m else first
        return f"{reader.where}: {msg}"
    row, col = int(m.group("row")), int(m.group("col"))
    line, cells = _locate(chunk.text, row, reader.options.delimiter)
    name = m.group("name") or ""
    text = cells[col] if col < len(cells) else None
    t = reader.types.get(name)
    where = f"{reader.where}: line {chunk.first_line + line - 1}, row {chunk.first_row + row}"
    column = f"column {reader.original.get(name, name)!r}"
    if t is None:
        return f"{where}, {column}: {m.group('msg')}"
    return f"{where}, {column} ({describe(t)}): {_problem(m.group('msg'), text, t, reader.options)}"


def _problem(msg: str, text: str | None, t: EastType, options: CsvOptions) -> str:
    shown = "an empty cell" if text == "" else f"{text!r}" if text is not None else "the cell"
    if _NULL_REQUIRED.match(msg) or (text is not None and text in options.missing()):
        return (
            f"{shown} is a missing value, but the field is not an Option "
            f"(declare it Option<{describe(t)}>)"
        )
    problem = f"cannot read {shown} as {describe(option_inner(t))}"
    if text in _MISSING_LOOKALIKES:
        problem += f" (if {text!r} marks a missing value, give --null-string {text}"
        problem += ")" if is_option(t) else f" and declare the field Option<{describe(t)}>)"
    return problem


def _locate(body: bytes, row: int, delimiter: str) -> tuple[int, list[str]]:
    """The line (1-based, in ``body``) where data row ``row`` starts, and its cells.

    Rows are counted as east-c counts them: records whose cells are all empty
    are skipped.
    """
    reader = csv.reader(io.StringIO(body.decode("utf-8"), newline=""), delimiter=delimiter)
    seen = 0
    start = 1
    try:
        for cells in reader:
            if any(cells):
                seen += 1
                if seen == row:
                    return start, cells
            start = reader.line_num + 1
    except csv.Error:  # Python's csv reads it differently: the row number still holds
        pass
    return start, []


@lru_cache(maxsize=64)
def _zipper(east_type: EastType) -> Any:
    """A compiled East function zipping the two halves of a split read into rows."""
    struct = east_type.value
    names = [(str(f["name"]), type_kind(f["type"]) in LITERAL_KINDS) for f in struct.value]
    pairs = _pairs(struct)
    others_t = ArrayType(
        StructType([(n, t) for n, t in pairs if type_kind(t) not in LITERAL_KINDS])
    )
    strings_t = ArrayType(StructType([(n, t) for n, t in pairs if type_kind(t) in LITERAL_KINDS]))

    def body(b: Any, others: Any, strings: Any) -> Any:
        def row(b2: Any, r: Any, i: Any) -> Any:
            s = b2.let(strings.get(i))
            return {n: (s[n] if literal else r[n]) for n, literal in names}

        return others.map(row, out=struct)

    return East.compile(East.function([others_t, strings_t], east_type, body), [])


def _pairs(struct: EastType) -> list[tuple[str, EastType]]:
    return [(str(f["name"]), f["type"]) for f in struct.value]


# ── writing ────────────────────────────────────────────────────────────────


def write_csv(value: EastValue, east_type: EastType, options: CsvOptions | None = None) -> bytes:
    """CSV bytes of an ``Array<Struct>`` value (see :func:`write_csv_to`)."""
    out = io.BytesIO()
    write_csv_to(value, east_type, options, out)
    return out.getvalue()


def write_csv_to(
    value: EastValue, east_type: EastType, options: CsvOptions | None, sink: Any
) -> None:
    """Write an ``Array<Struct>`` value as CSV to a binary file, :data:`WRITE_ROWS` rows at a time.

    ``none`` is written as the first null string, or as an empty cell.
    ``options.columns`` maps header names to fields here too, so a file read
    with ``--column`` is written back with its own header.
    """
    options = options or CsvOptions()
    options.check()
    fields = table_fields(east_type, "CSV")
    struct_fields(east_type)
    names = {f: h for h, f in options.columns.items()}
    config = csv_serialize_config(
        delimiter=options.delimiter,
        newline="\n",
        include_header=False,
        null_string=options.null_strings[0] if options.null_strings else "",
    )
    if options.header:
        head = io.StringIO()
        writer = csv.writer(head, delimiter=options.delimiter, lineterminator="\n")
        writer.writerow([names.get(n, n) for n, _ in fields])
        sink.write(head.getvalue().encode())
    encode = _encode_csv_for(east_type, config)
    value = exact_datetimes(value, east_type)
    n = len(value)
    for start in range(0, n, WRITE_ROWS):
        part = value if n <= WRITE_ROWS else rows(value, start, min(start + WRITE_ROWS, n))
        body = bytes(encode(part))
        sink.write(body)
        if body and not body.endswith(b"\n"):
            sink.write(b"\n")


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
