"""Crash-safe file writes: stage in the same directory, fsync, rename, fsync the directory.

This is the only module that creates or replaces repository files. A reader
(or a crash) can observe the old content or the new content, never a mix.
Staging files carry a ``.partial`` suffix so garbage collection can find
leftovers from killed writers.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from e3.errors import StorageError

PARTIAL_SUFFIX = ".partial"


def staging_name(final: Path) -> Path:
    """A unique ``*.partial`` name next to ``final``, where a write stages its bytes."""
    return Path(_staging_file(os.fspath(final)))


def _staging_file(final: str) -> str:
    """:func:`staging_name` on strings (the hot path: no ``Path`` built)."""
    return f"{final}.{os.getpid()}.{os.urandom(4).hex()}{PARTIAL_SUFFIX}"


def fsync_dir(directory: Path | str) -> None:
    """Make a rename or create inside ``directory`` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def make_dirs(directory: Path, *, durable: bool = True) -> None:
    """Create ``directory`` and any missing parents (no error if it exists).

    A new directory is an entry in its parent, and like any entry it can be
    lost in a power cut until the parent is fsynced: a file fsynced inside a
    directory whose own entry was lost is lost with it. With ``durable`` every
    parent that got a new entry is fsynced before this returns.
    """
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for d in reversed(missing):
        # Made meanwhile by another writer: its parent is fsynced below all the same.
        with contextlib.suppress(FileExistsError):
            d.mkdir()
    if durable:
        for d in reversed(missing):
            fsync_dir(d.parent)


def storage_error(exc: OSError, action: str, path: Path) -> StorageError:
    """A one-line :class:`StorageError` for an OS failure."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno == errno.ENOSPC:
        reason = "no space left on device"
    return StorageError(f"cannot {action} {path}: {reason}")


def write_bytes(final: Path | str, data: bytes, *, durable: bool = True, mode: int = 0o644) -> None:
    """Atomically replace ``final`` with ``data``.

    With ``durable`` the data is fsynced before the rename and the directory
    after it, so the new content survives power loss once this returns. Runs
    twice per task (its output object, its output ref), so it works on the
    path as a string: no ``Path`` is built unless a directory is missing or an
    error is reported.
    """
    target = os.fspath(final)
    tmp = _staging_file(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, mode)
    except FileNotFoundError:
        try:
            make_dirs(Path(target).parent, durable=durable)
            fd = os.open(tmp, flags, mode)
        except OSError as exc:
            raise storage_error(exc, "write", Path(target)) from exc
    except OSError as exc:
        raise storage_error(exc, "write", Path(target)) from exc
    try:
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, target)
    except OSError as exc:
        _discard(tmp)
        raise storage_error(exc, "write", Path(target)) from exc
    except BaseException:
        _discard(tmp)
        raise
    if durable:
        fsync_dir(os.path.dirname(target) or ".")


@contextlib.contextmanager
def staged(final: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``final`` when the block ends without an error.

    For output written in pieces (a large table): it is staged beside ``final``
    and renamed into place, so a failure or a crash leaves the old file, never
    half a new one. Not fsynced: for files handed to users, not repository files.
    """
    tmp = staging_name(final)
    try:
        f = tmp.open("xb")
    except FileNotFoundError:
        final.parent.mkdir(parents=True, exist_ok=True)
        f = tmp.open("xb")
    except OSError as exc:
        raise storage_error(exc, "write", final) from exc
    with _renamed_into_place(tmp, final), f:
        yield f


@contextlib.contextmanager
def _renamed_into_place(tmp: Path, final: Path) -> Iterator[None]:
    """Rename the staged ``tmp`` to ``final`` once the block succeeds; remove it otherwise."""
    try:
        yield
        os.rename(tmp, final)
    except OSError as exc:
        _discard(tmp)
        raise storage_error(exc, "write", final) from exc
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: Path | str) -> None:
    """Remove a staged file whose write failed (best effort: gc finds what is left)."""
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` (``os.write`` may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def create_file(path: Path | str, data: bytes) -> None:
    """Create a new file with ``data``, without staging.

    For files in a directory nobody reads yet. Fails if the file exists.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise storage_error(exc, "write", Path(path)) from exc
    try:
        write_all(fd, data)
    except OSError as exc:
        raise storage_error(exc, "write", Path(path)) from exc
    finally:
        os.close(fd)


def create_exclusive(final: Path, data: bytes, *, durable: bool = True) -> bool:
    """Atomically create ``final`` with ``data`` unless it already exists.

    Returns ``False`` (and changes nothing) if ``final`` exists. Two racing
    callers cannot both succeed: the file is staged, then hard-linked into place.
    """
    tmp = staging_name(final)
    try:
        make_dirs(final.parent, durable=durable)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    except OSError as exc:
        _discard(tmp)
        raise storage_error(exc, "write", final) from exc
    if durable:
        fsync_dir(final.parent)
    return True


def remove_file(path: Path, *, durable: bool = True) -> bool:
    """Unlink ``path`` if present; returns whether it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise storage_error(exc, "remove", path) from exc
    if durable:
        fsync_dir(path.parent)
    return True


#: What :func:`read_bytes` asks for first: every record and ref e3 reads per task is
#: smaller, so those take one read and no ``fstat``; a larger file is sized then.
_FIRST_READ = 16 << 10


def read_bytes(path: Path | str) -> bytes | None:
    """Content of ``path``, or ``None`` if it does not exist (or is a directory).

    Plain descriptor reads: this runs several times per task, and a buffered
    file object costs three more system calls than the read itself needs.
    A file under :data:`_FIRST_READ` bytes costs ``open``, one ``read``, ``close``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise storage_error(exc, "read", Path(path)) from exc
    try:
        first = os.read(fd, _FIRST_READ)
        if len(first) < _FIRST_READ:
            return first  # a short read of a regular file is its end: no second call
        remaining = max(os.fstat(fd).st_size - len(first), 0)
        rest = os.read(fd, remaining + 1)
        if len(rest) <= remaining:
            return first + rest  # short again: the end
        chunks = [first, rest]
        while chunk := os.read(fd, 1 << 20):  # the file grew while it was read
            chunks.append(chunk)
        return b"".join(chunks)
    except IsADirectoryError:
        return None
    except OSError as exc:
        raise storage_error(exc, "read", Path(path)) from exc
    finally:
        os.close(fd)


def prune_empty_dirs(start: Path, stop: Path) -> None:
    """Remove ``start`` and its parents while empty, never ``stop`` or above it."""
    current = start
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def sync_filesystem(path: Path) -> None:
    """Flush every pending write of the file system holding ``path`` (Linux ``syncfs``).

    One call makes a whole batch of unsynced writes durable, much cheaper than
    an fsync per file; it is the barrier before a commit that refers to them.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if libc.syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        os.sync()
