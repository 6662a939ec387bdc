"""Uploads and downloads of the API, spooled in a private directory.

Upload bodies stream to files in the server's own spool directory, never into
memory; their ids are unguessable and each is claimed by exactly one commit.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from e3.base.procs import ProcessIdentity, boot_id, current_identity
from e3.errors import ConflictError, JobNotFound
from e3.server.jobs import TTL, new_id


@dataclass
class Upload:
    """An announced upload: where its bytes go and how many are expected."""

    id: str
    path: Path
    size: int
    purpose: str
    repo: str
    target: str = ""
    hash: str = ""
    #: announced -> receiving (one PUT at a time) -> received -> claimed (by one commit)
    state: str = "announced"
    created: float = field(default_factory=time.monotonic)


@dataclass
class Download:
    """Bytes waiting to be fetched once."""

    id: str
    path: Path
    content_type: str
    sha256: str
    created: float = field(default_factory=time.monotonic)


class Transfers:
    """Uploads and downloads, spooled in a private directory."""

    def __init__(self, spool: Path | None = None) -> None:
        if spool is None:
            _remove_abandoned_spools()
            me = current_identity()
            spool = Path(tempfile.mkdtemp(prefix=f"e3-server-{me.pid}-{me.start_time}-"))
        self.spool = spool
        self.spool.mkdir(parents=True, exist_ok=True)
        self.uploads: dict[str, Upload] = {}
        self.downloads: dict[str, Download] = {}
        self._lock = threading.Lock()

    def new_upload(
        self, repo: str, size: int, purpose: str, *, target: str = "", hash_: str = ""
    ) -> Upload:
        """Announce an upload of ``size`` bytes."""
        with self._lock:
            self._expire()
            up = Upload(new_id(), Path(), size, purpose, repo, target, hash_)
            up.path = self.spool / f"up-{up.id}"
            self.uploads[up.id] = up
            return up

    def upload(self, upload_id: str) -> Upload:
        """An announced upload."""
        up = self.uploads.get(upload_id)
        if up is None:
            raise JobNotFound(f"no upload {upload_id!r}", id=upload_id)
        return up

    def begin_receiving(self, upload_id: str) -> Upload:
        """Admit one ``PUT`` of an upload's bytes (a second, concurrent or later, is refused)."""
        with self._lock:
            up = self.upload(upload_id)
            if up.state != "announced":
                raise ConflictError(f"upload {upload_id!r} is {up.state}, not waiting for bytes")
            up.state = "receiving"
            return up

    def end_receiving(self, up: Upload, ok: bool) -> None:
        """The ``PUT`` ended: the bytes are in place, or the upload may be tried again."""
        with self._lock:
            up.state = "received" if ok else "announced"

    def claim(self, upload_id: str, repo: str, purpose: str, target: str | None = None) -> Upload:
        """Take a received upload for one commit (import, dataset set, run input).

        Raises:
            JobNotFound: no such upload for this repository, purpose and target.
            ConflictError: its bytes have not arrived, or another commit took it.
        """
        with self._lock:
            up = self.uploads.get(upload_id)
            if (
                up is None
                or up.repo != repo
                or up.purpose != purpose
                or (target is not None and up.target != target)
            ):
                raise JobNotFound(f"no {purpose} upload {upload_id!r} here", id=upload_id)
            if up.state != "received":
                raise ConflictError(f"upload {upload_id!r} is {up.state}, not ready to commit")
            up.state = "claimed"
            return up

    def finish_upload(self, upload_id: str) -> None:
        """Forget an upload and its bytes."""
        with self._lock:
            up = self.uploads.pop(upload_id, None)
        if up is not None:
            with contextlib.suppress(FileNotFoundError):
                up.path.unlink()

    def new_download(self, data_path: Path, content_type: str, sha256: str) -> Download:
        """Offer a file (moved into the spool) for one download."""
        with self._lock:
            self._expire()
            d = Download(new_id(), Path(), content_type, sha256)
            d.path = self.spool / f"down-{d.id}"
            shutil.move(str(data_path), d.path)
            self.downloads[d.id] = d
            return d

    def take_download(self, download_id: str) -> Download:
        """A download, removed from the table (one-shot)."""
        with self._lock:
            d = self.downloads.pop(download_id, None)
        if d is None:
            raise JobNotFound(f"no download {download_id!r}", id=download_id)
        return d

    def _expire(self) -> None:
        now = time.monotonic()
        for table in (self.uploads, self.downloads):
            for k in [k for k, v in table.items() if now - v.created > TTL]:
                item = table.pop(k)
                with contextlib.suppress(FileNotFoundError):
                    item.path.unlink()

    def close(self) -> None:
        """Delete the spool."""
        shutil.rmtree(self.spool, ignore_errors=True)


_SPOOL_NAME = re.compile(r"e3-server-(\d+)-(\d+)-")


def _remove_abandoned_spools() -> None:
    """Delete spools left by this user's servers that died without cleaning up.

    A SIGKILLed server leaves its spool, with any half-received uploads, in the
    temporary directory; the next server to start removes it.
    """
    root = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            m = _SPOOL_NAME.match(entry.name)
            if not m or not entry.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                    continue
                owner = ProcessIdentity(int(m.group(1)), int(m.group(2)), boot_id())
                if not owner.is_alive():
                    shutil.rmtree(entry.path, ignore_errors=True)
