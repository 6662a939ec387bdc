"""Package zips: a deterministic writer and a defensive reader.

The writer makes byte-identical archives for identical content: entries sorted
by name, a fixed timestamp (1980-01-01, the zip format's epoch), fixed
permissions and a fixed deflate level. It writes ``<out>.partial`` and renames.

The reader refuses anything that could escape or confuse the importer before a
single byte is written to a repository: absolute paths, ``..`` segments,
backslashes, NUL bytes, undecodable names, encrypted entries, and archives
that are truncated or fail their CRC. Entry bodies are only ever read in
chunks, and what they decompress to is capped per entry and in total
(:class:`ZipLimits`), counted as the bytes come out of the decompressor rather
than trusted from the archive's own size fields: a zip bomb is refused with
a :class:`~e3.errors.ValueTooLarge` after at most the cap's worth of inflating,
and the importer streams entries to the object store, so no entry is ever
held in memory whole.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from e3.base.atomic import fsync_dir, storage_error
from e3.errors import InvalidPackage, ValueTooLarge

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_COMPRESS_LEVEL = 6
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZipLimits:
    """How much the entries of one archive may decompress to.

    ``entry``: any single entry; ``total``: every byte read from the archive,
    summed over all its entries (an importer reading an entry twice, to check
    and then to store it, counts it once per read). Refusals name the limit.
    """

    entry: int = 1 << 30
    total: int = 4 << 30


#: Limits of imports that are not given any (the CLI's, on the user's own files).
DEFAULT_LIMITS = ZipLimits()


def write_zip(out: Path, entries: dict[str, bytes], *, durable: bool = True) -> int:
    """Write ``entries`` (name → bytes) as a deterministic zip; returns its size."""
    out = Path(out)
    tmp = out.with_name(out.name + f".{os.getpid()}.partial")
    try:
        with open(tmp, "wb") as f:
            with zipfile.ZipFile(f, "w") as zf:
                for name in sorted(entries):
                    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.create_system = 3
                    info.external_attr = 0o644 << 16
                    zf.writestr(info, entries[name], compresslevel=_COMPRESS_LEVEL)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.rename(tmp, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise storage_error(exc, "write", out) from exc
    if durable:
        fsync_dir(out.parent)
    return out.stat().st_size


@dataclass(frozen=True)
class ZipEntry:
    """A validated entry: its normalised name and index in the archive."""

    name: str
    info: zipfile.ZipInfo


def _check_name(name: str, where: str) -> str:
    if not name or "\x00" in name or "\\" in name:
        raise InvalidPackage(f"{where}: unsafe entry name {name!r}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InvalidPackage(f"{where}: absolute entry path {name!r}")
    parts = name.split("/")
    if any(p in ("..", ".") for p in parts):
        raise InvalidPackage(f"{where}: entry path {name!r} climbs out of the archive")
    if any(p == "" for p in parts[:-1]):
        raise InvalidPackage(f"{where}: entry path {name!r} has an empty segment")
    return name


class SafeZip:
    """A zip archive opened for validation-first reading."""

    def __init__(
        self, source: Path | BinaryIO, label: str, limits: ZipLimits = DEFAULT_LIMITS
    ) -> None:
        self.label = label
        self.limits = limits
        #: Bytes decompressed from this archive so far (every read counts).
        self.inflated = 0
        try:
            self._zf = zipfile.ZipFile(source, "r")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
            raise InvalidPackage(f"{label}: not a valid zip archive ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise InvalidPackage(f"{label}: entry name is not valid UTF-8") from exc
        except NotImplementedError as exc:
            raise InvalidPackage(f"{label}: unsupported zip feature ({exc})") from exc
        except FileNotFoundError as exc:
            raise InvalidPackage(f"{label}: file not found") from exc
        except OSError as exc:
            raise InvalidPackage(f"{label}: cannot read ({exc.strerror or exc})") from exc

    def close(self) -> None:
        """Close the archive."""
        self._zf.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def entries(self) -> list[ZipEntry]:
        """Every file entry (directories skipped), names validated, in archive order."""
        out: list[ZipEntry] = []
        for info in self._zf.infolist():
            # zipfile cuts a name at its first NUL, which can leave it empty.
            if "\x00" in info.orig_filename or not info.filename:
                raise InvalidPackage(f"{self.label}: unsafe entry name {info.orig_filename!r}")
            if info.is_dir():
                _check_name(info.filename.rstrip("/") or ".", self.label)
                continue
            if info.flag_bits & 0x1:
                raise InvalidPackage(f"{self.label}: encrypted entry {info.filename!r}")
            if info.file_size > self.limits.entry:
                raise self._too_large(info.filename, info.file_size)
            out.append(ZipEntry(_check_name(info.filename, self.label), info))
        return out

    def chunks(self, entry: ZipEntry) -> Iterator[bytes]:
        """The entry's bytes in chunks; CRC, size and the limits are checked as they come.

        Raises:
            ValueTooLarge: the entry, or the archive so far, decompresses past a limit.
            InvalidPackage: the entry is corrupt or longer than it declares.
        """
        total = 0
        try:
            with self._zf.open(entry.info, "r") as f:
                while True:
                    chunk = f.read(_CHUNK)
                    if not chunk:
                        break
                    total += len(chunk)
                    self.inflated += len(chunk)
                    if total > entry.info.file_size:
                        raise InvalidPackage(
                            f"{self.label}: entry {entry.name!r} is longer than declared"
                        )
                    if total > self.limits.entry:
                        raise self._too_large(entry.name, total)
                    if self.inflated > self.limits.total:
                        raise ValueTooLarge(
                            f"{self.label}: the archive is too large: it decompresses to "
                            f"more than {self.limits.total} bytes (the limit of one import)",
                            limit=str(self.limits.total),
                        )
                    yield chunk
        except (zipfile.BadZipFile, EOFError, zlib.error, ValueError, OSError) as exc:
            raise InvalidPackage(f"{self.label}: entry {entry.name!r} is corrupt ({exc})") from exc
        except NotImplementedError as exc:
            raise InvalidPackage(
                f"{self.label}: entry {entry.name!r} uses an unsupported compression ({exc})"
            ) from exc

    def read(self, entry: ZipEntry, limit: int = 1 << 20) -> bytes:
        """An entry's whole content, for records (refuses more than ``limit`` bytes).

        Object and log entries can be large: they are streamed with
        :meth:`chunks`, never read whole.
        """
        if entry.info.file_size > limit:
            raise InvalidPackage(
                f"{self.label}: entry {entry.name!r} is {entry.info.file_size} bytes, "
                f"more than such an entry may be ({limit})"
            )
        return b"".join(self.chunks(entry))

    def _too_large(self, name: str, size: int) -> ValueTooLarge:
        return ValueTooLarge(
            f"{self.label}: entry {name!r} is too large: it decompresses to more than "
            f"{self.limits.entry} bytes (at least {size}; the limit of one entry)",
            limit=str(self.limits.entry),
        )
