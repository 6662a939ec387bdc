"""Package zips: a deterministic writer and a defensive reader.

The writer makes byte-identical archives for identical content: entries sorted
by name, a fixed timestamp (1980-01-01, the zip format's epoch), fixed
permissions and a fixed deflate level. It writes ``<out>.partial`` and renames.

The reader refuses anything that could escape or confuse the importer before a
single byte is written to a repository: absolute paths, ``..`` segments,
backslashes, NUL bytes, undecodable names, encrypted entries, and archives
that are truncated or fail their CRC. Entry bodies are read in chunks with a
size cap, so a zip bomb cannot exhaust memory.
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
from e3.errors import InvalidPackage

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
_COMPRESS_LEVEL = 6
#: Largest single entry the reader accepts (uncompressed).
MAX_ENTRY_BYTES = 8 << 30
_CHUNK = 1 << 20


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

    def __init__(self, source: Path | BinaryIO, label: str) -> None:
        self.label = label
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
            if info.file_size > MAX_ENTRY_BYTES:
                raise InvalidPackage(f"{self.label}: entry {info.filename!r} is too large")
            out.append(ZipEntry(_check_name(info.filename, self.label), info))
        return out

    def chunks(self, entry: ZipEntry) -> Iterator[bytes]:
        """The entry's bytes in chunks; CRC and size are checked by the end."""
        total = 0
        try:
            with self._zf.open(entry.info, "r") as f:
                while True:
                    chunk = f.read(_CHUNK)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > entry.info.file_size:
                        raise InvalidPackage(
                            f"{self.label}: entry {entry.name!r} is longer than declared"
                        )
                    yield chunk
        except (zipfile.BadZipFile, EOFError, zlib.error, ValueError, OSError) as exc:
            raise InvalidPackage(f"{self.label}: entry {entry.name!r} is corrupt ({exc})") from exc
        except NotImplementedError as exc:
            raise InvalidPackage(
                f"{self.label}: entry {entry.name!r} uses an unsupported compression ({exc})"
            ) from exc

    def read(self, entry: ZipEntry, limit: int = 64 << 20) -> bytes:
        """An entry's whole content (for small entries; refuses more than ``limit`` bytes)."""
        if entry.info.file_size > limit:
            raise InvalidPackage(f"{self.label}: entry {entry.name!r} is unexpectedly large")
        return b"".join(self.chunks(entry))
