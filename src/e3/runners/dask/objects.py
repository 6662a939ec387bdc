"""A worker's inputs: verified reads from a shared repository, or verified local copies.

An input named by hash is found, in this order:

1. in the repository, when the worker sees its file system: the stored
   object is read once and its hash checked (the check is remembered for
   that file: path, inode, size and modification time); East tasks then read
   the stored file itself, as they do locally;
2. in this worker's cache of objects it was sent earlier;
3. in the bytes sent with the task (inline, or scattered by the engine),
   which are checked and written to the cache.

An input found nowhere is reported to the engine (:class:`InputUnavailable`),
which then sends it. Cached copies are evicted, oldest first, past a size
limit, but never while a task uses them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from e3.runners.dask.spec import InputRef, InputUnavailable

#: Bytes of cached inputs a worker keeps (oldest evicted first).
DEFAULT_CACHE_LIMIT = 2 << 30


def _sha256_file(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


class ObjectCache:
    """One worker process's verified inputs (thread-safe)."""

    def __init__(self, root: Path, limit: int = DEFAULT_CACHE_LIMIT) -> None:
        self.root = root
        self.limit = limit
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._pins: dict[str, int] = {}
        self._verified: set[tuple[str, int, int, int]] = set()
        self.total = 0

    def _cached(self, h: str) -> str:
        return str(self.root / f"{h}.beast2")

    def paths(
        self, refs: Sequence[InputRef], blobs: Sequence[bytes], repo_root: str, worker: str
    ) -> list[str]:
        """A readable, verified file per input (the caller :meth:`release` s them after).

        Raises:
            InputUnavailable: inputs neither sent nor readable from the repository.
            ValueError: sent bytes that do not match their hash (damaged in transit).
        """
        found: list[str] = []
        missing: list[str] = []
        for ref in refs:
            blob = ref.data if ref.data is not None else None
            if blob is None and ref.arg is not None:
                blob = blobs[ref.arg]
            path = self._find(ref.hash, blob, repo_root)
            if path is None:
                missing.append(ref.hash)
            found.append(path or "")
        if missing:
            self.release(refs)
            raise InputUnavailable(missing, worker)
        return found

    def _find(self, h: str, blob: bytes | None, repo_root: str) -> str | None:
        with self._lock:
            self._pins[h] = self._pins.get(h, 0) + 1
            if h in self._sizes:
                self._sizes.move_to_end(h)
                return self._cached(h)
        if blob is not None:
            return self._store(h, blob)
        if repo_root:
            return self._from_repository(h, repo_root)
        return None

    def _from_repository(self, h: str, repo_root: str) -> str | None:
        path = os.path.join(repo_root, "objects", h[:2], f"{h[2:]}.beast2")
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._verified:
                return path
        if _sha256_file(path) != h:
            return None  # another repository at this path, or a damaged object
        with self._lock:
            if len(self._verified) > 100_000:
                self._verified.clear()
            self._verified.add(key)
        return path

    def _store(self, h: str, blob: bytes) -> str:
        if hashlib.sha256(blob).hexdigest() != h:
            raise ValueError(f"input {h[:12]}… arrived damaged (its bytes do not match its hash)")
        final = self._cached(h)
        tmp = f"{final}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, final)
        with self._lock:
            if h not in self._sizes:
                self._sizes[h] = len(blob)
                self.total += len(blob)
            self._evict()
        return final

    def _evict(self) -> None:
        """Drop the oldest unpinned copies while over the limit (lock held)."""
        for h in list(self._sizes):
            if self.total <= self.limit:
                return
            if self._pins.get(h):
                continue
            self.total -= self._sizes.pop(h)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._cached(h))

    def release(self, refs: Sequence[InputRef]) -> None:
        """The task that asked for ``refs`` is over."""
        with self._lock:
            for ref in refs:
                n = self._pins.get(ref.hash, 0) - 1
                if n > 0:
                    self._pins[ref.hash] = n
                else:
                    self._pins.pop(ref.hash, None)
