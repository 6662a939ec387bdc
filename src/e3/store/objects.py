"""The content-addressed object store: an interface and two implementations.

Objects are immutable byte strings named by the SHA-256 of their bytes. The
:class:`ObjectStore` protocol is what the rest of e3 uses; :class:`LocalObjectStore`
keeps objects on disk at ``objects/<2 hex>/<62 hex>.beast2`` (the reference
layout) and :class:`MemoryObjectStore` keeps them in a dict for tests and the
SDK. Both pass the same conformance suite (``tests/store/test_objects.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from e3.base import atomic
from e3.base.hashing import object_hash
from e3.base.names import ObjectHash, check_hash, is_hash
from e3.errors import CorruptObject, ObjectNotFound

OBJECT_SUFFIX = ".beast2"


def object_relpath(hash_: str) -> str:
    """Where an object lives relative to a repository (and in package zips): ``objects/hh/…``."""
    return f"objects/{hash_[:2]}/{hash_[2:]}{OBJECT_SUFFIX}"


@dataclass(frozen=True)
class ObjectInfo:
    """Size in bytes and modification time (seconds since the epoch) of a stored object."""

    size: int
    mtime: float


class ObjectStore(Protocol):
    """Immutable, deduplicated, content-addressed bytes."""

    def put(self, data: bytes, *, sync: bool = True) -> ObjectHash:
        """Store ``data`` (no-op if already present) and return its hash.

        ``sync=False`` skips the per-object fsync; the caller then calls
        :func:`e3.base.atomic.sync_filesystem` before anything refers to the object.
        """
        ...

    def put_stream(
        self, chunks: Iterable[bytes], expected: str, *, sync: bool = True
    ) -> ObjectHash:
        """Store an object arriving in chunks, never holding it whole in memory.

        Its bytes must hash to ``expected``: otherwise nothing is stored and
        :class:`CorruptObject` is raised (an exception from ``chunks`` also
        leaves nothing behind). ``sync`` as for :meth:`put`.
        """
        ...

    def get(self, hash_: str, *, verify: bool = False) -> bytes:
        """The bytes of an object; ``verify`` re-hashes them and raises :class:`CorruptObject`."""
        ...

    def has(self, hash_: str) -> bool:
        """Whether the object is stored."""
        ...

    def is_intact(self, hash_: str) -> bool:
        """Whether the object is stored and its bytes still hash to its name."""
        ...

    def info(self, hash_: str) -> ObjectInfo:
        """Size and age of an object (raises :class:`ObjectNotFound`)."""
        ...

    def delete(self, hash_: str) -> bool:
        """Remove an object (garbage collection only); returns whether it existed."""
        ...

    def hashes(self) -> Iterator[ObjectHash]:
        """Every stored object's hash (order unspecified)."""
        ...


def _storage(path: Path, fn: Callable[..., object], *args: object) -> None:
    """``fn(*args)``, an ``OSError`` from it raised as the :class:`StorageError` of ``path``."""
    try:
        fn(*args)
    except OSError as exc:
        raise atomic.storage_error(exc, "write", path) from exc


def _not_found(hash_: str) -> ObjectNotFound:
    return ObjectNotFound(f"object {hash_[:12]}… not found", hash=hash_)


def _corrupt(hash_: str, actual: str) -> CorruptObject:
    return CorruptObject(
        f"object {hash_[:12]}… is corrupt: its bytes hash to {actual[:12]}…", hash=hash_
    )


class LocalObjectStore:
    """Objects as files under ``<repo>/objects``; writes are atomic and durable."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self.durable = durable
        self._prefix = str(root) + os.sep

    def path_of(self, hash_: str) -> Path:
        """File holding an object (whether or not it exists)."""
        return Path(self.file_of(hash_))

    def file_of(self, hash_: str) -> str:
        """:meth:`path_of` as a string (hot paths avoid pathlib's overhead)."""
        check_hash(hash_)
        return f"{self._prefix}{hash_[:2]}{os.sep}{hash_[2:]}{OBJECT_SUFFIX}"

    def put(self, data: bytes, *, sync: bool = True) -> ObjectHash:
        """Store ``data``, unless the object is already stored intact.

        An existing file is trusted only if it holds exactly these bytes: one
        that was torn or damaged since (a flipped bit) is replaced, atomically
        like any write, so writing a value again repairs its object. Nor is it
        trusted to be on disk: a run writes its outputs before its batch's sync,
        and a ``set`` of the same value must not commit a ref to a file that a
        power cut can still take away, so a synced put syncs it too.
        """
        h = object_hash(data)
        path = self.file_of(h)
        if atomic.read_bytes(path) == data:
            if self.durable and sync:
                _storage(Path(path), self._sync_present, path)
            return h
        atomic.write_bytes(path, data, durable=self.durable and sync, mode=0o444)
        return h

    def _sync_present(self, path: str) -> None:
        """Make an object file found in place durable: its bytes, its name, its directory's."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        atomic.fsync_dir(Path(path).parent)
        atomic.fsync_dir(self.root)

    def put_stream(
        self, chunks: Iterable[bytes], expected: str, *, sync: bool = True
    ) -> ObjectHash:
        """Stage the chunks next to the object's file while hashing them, then rename.

        The staging file is named like every other interrupted write's
        (``*.partial`` in the object's directory), so a writer killed midway
        leaves something garbage collection removes.
        """
        final = Path(self.file_of(expected))
        tmp = atomic.staging_name(final)
        try:
            atomic.make_dirs(final.parent, durable=self.durable and sync)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        except OSError as exc:
            raise atomic.storage_error(exc, "write", final) from exc
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                for chunk in chunks:  # the source's own errors propagate as they are
                    digest.update(chunk)
                    _storage(final, atomic.write_all, f.fileno(), chunk)
                if digest.hexdigest() != expected:
                    raise _corrupt(expected, digest.hexdigest())
                if self.durable and sync:
                    _storage(final, os.fsync, f.fileno())
            _storage(final, os.rename, tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.durable and sync:
            atomic.fsync_dir(final.parent)
        return ObjectHash(expected)

    def get(self, hash_: str, *, verify: bool = False) -> bytes:
        """Read an object, optionally checking its hash."""
        data = atomic.read_bytes(self.file_of(hash_))
        if data is None:
            raise _not_found(hash_)
        if verify:
            actual = object_hash(data)
            if actual != hash_:
                raise _corrupt(hash_, actual)
        return data

    def has(self, hash_: str) -> bool:
        """Whether the object file exists."""
        return os.path.isfile(self.file_of(hash_))

    def is_intact(self, hash_: str) -> bool:
        """Whether the object file exists and hashes to its name (re-read and re-hashed)."""
        data = atomic.read_bytes(self.file_of(hash_))
        return data is not None and object_hash(data) == hash_

    def info(self, hash_: str) -> ObjectInfo:
        """Size and mtime from the file system."""
        try:
            st = self.path_of(hash_).stat()
        except FileNotFoundError:
            raise _not_found(hash_) from None
        return ObjectInfo(st.st_size, st.st_mtime)

    def delete(self, hash_: str) -> bool:
        """Unlink an object file and its prefix directory once empty."""
        path = self.path_of(hash_)
        existed = atomic.remove_file(path, durable=False)
        if existed:
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        return existed

    def hashes(self) -> Iterator[ObjectHash]:
        """Walk ``objects/``, skipping staging files and anything not named like an object."""
        try:
            prefixes = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return
        for prefix in prefixes:
            if len(prefix) != 2:
                continue
            try:
                names = os.listdir(self.root / prefix)
            except (NotADirectoryError, FileNotFoundError):
                continue
            for name in names:
                if not name.endswith(OBJECT_SUFFIX):
                    continue
                h = prefix + name[: -len(OBJECT_SUFFIX)]
                if is_hash(h):
                    yield ObjectHash(h)

    def partial_files(self) -> Iterator[Path]:
        """Staging files left by killed writers (garbage collection removes old ones)."""
        try:
            prefixes = os.listdir(self.root)
        except FileNotFoundError:
            return
        for prefix in prefixes:
            d = self.root / prefix
            if not d.is_dir():
                continue
            for name in os.listdir(d):
                if name.endswith(atomic.PARTIAL_SUFFIX):
                    yield d / name


class MemoryObjectStore:
    """Objects in a dict: for tests and for building packages without a repository."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}

    def put(self, data: bytes, *, sync: bool = True) -> ObjectHash:
        """Store ``data`` (copied) under its hash."""
        h = object_hash(data)
        if h not in self._data:
            self._data[h] = (bytes(data), time.time())
        return h

    def put_stream(
        self, chunks: Iterable[bytes], expected: str, *, sync: bool = True
    ) -> ObjectHash:
        """Join the chunks (memory is where this store keeps objects) and check their hash."""
        check_hash(expected)
        data = b"".join(chunks)
        actual = object_hash(data)
        if actual != expected:
            raise _corrupt(expected, actual)
        return self.put(data)

    def get(self, hash_: str, *, verify: bool = False) -> bytes:
        """The stored bytes."""
        check_hash(hash_)
        try:
            data = self._data[hash_][0]
        except KeyError:
            raise _not_found(hash_) from None
        if verify:
            actual = object_hash(data)
            if actual != hash_:
                raise _corrupt(hash_, actual)
        return data

    def has(self, hash_: str) -> bool:
        """Whether the object is held."""
        check_hash(hash_)
        return hash_ in self._data

    def is_intact(self, hash_: str) -> bool:
        """Whether the object is held and hashes to its name."""
        held = self._data.get(check_hash(hash_))
        return held is not None and object_hash(held[0]) == hash_

    def info(self, hash_: str) -> ObjectInfo:
        """Size and insertion time."""
        check_hash(hash_)
        try:
            data, t = self._data[hash_]
        except KeyError:
            raise _not_found(hash_) from None
        return ObjectInfo(len(data), t)

    def delete(self, hash_: str) -> bool:
        """Forget an object."""
        check_hash(hash_)
        return self._data.pop(hash_, None) is not None

    def hashes(self) -> Iterator[ObjectHash]:
        """Snapshot of the held hashes."""
        return iter([ObjectHash(h) for h in self._data])

    def corrupt_for_tests(self, hash_: str, data: bytes) -> None:
        """Overwrite an object's bytes (lets the conformance suite test verification)."""
        self._data[hash_] = (data, self._data[hash_][1])
