"""The ``bombs`` target of ``python -m fuzz hostile``: decompression bombs against the readers.

Each case is a bomb of :mod:`fuzz.bombs` (a kind and a size, cached once built), plain or
mutated, read as the server reads it under small limits (:data:`BOMB_LIMIT`,
:data:`BOMB_ZIP`): canonicalising a dataset value, decoding a typed API body, importing a
package zip into a real repository. A case passes if it is read or refused with an
:class:`~e3.errors.E3Error` within :data:`BOMB_SECONDS`, the worker's peak memory rising
less than :data:`BOMB_MEMORY` (``/proc/self/clear_refs`` resets the peak per case), and a
refused import leaving the repository unchanged. Each case reports its verdict, for the
table ``python -m fuzz hostile`` prints.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from fuzz.hostile import Target, _listing, mutate

#: Limits the bombs target reads under (as a small server would be configured).
BOMB_LIMIT = 4 << 20
BOMB_ZIP = (4 << 20, 16 << 20)
#: Most a worker's peak memory may rise while reading one bomb.
BOMB_MEMORY = 64 << 20
#: Longest one bomb may take to be read or refused (seconds).
BOMB_SECONDS = 5.0
_BOMB_KINDS = ("blob", "string", "body", "forged", "zip-default", "zip-junk", "zip-deep")
_BOMB_SIZES = (1 << 20, 3 << 20, 5 << 20, 64 << 20, 256 << 20)


class BombTarget(Target):
    """Decompression bombs (see the module docstring), plain or mutated."""

    name = "bombs"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        from e3.store.repository import create_repository
        from fuzz import bombs

        self.tmp = Path(tempfile.mkdtemp(prefix="e3-bombfuzz-"))
        self.base_zip = bombs.base_package_zip()
        self.repo, _ = create_repository(self.tmp / "repo", durable=False)
        self.case_file = self.tmp / "case.zip"
        self._made: dict[tuple[str, int], bytes] = {}
        self.corpus = [b""]

    def _bomb(self, kind: str, size: int) -> bytes:
        from fuzz import bombs

        key = (kind, size)
        if key not in self._made:
            if kind == "blob":
                made = bombs.blob_bomb(size)
            elif kind == "string":
                made = bombs.string_bomb(size)
            elif kind == "body":
                made = bombs.name_body_bomb(size)
            elif kind == "forged":  # a frame claiming a tenth of what it inflates to
                made = bombs.forged_bomb(size)
            elif kind == "zip-default":
                made = bombs.zip_with_big_default(self.base_zip, size)
            elif kind == "zip-junk":
                made = bombs.zip_with_junk_entries(self.base_zip, 4, size)
            else:
                made = bombs.zip_with_deep_structure(
                    self.base_zip, 62 if size < BOMB_LIMIT else 1000
                )
            self._made[key] = made
        return self._made[key]

    def input(self, case: int) -> bytes:
        rng = random.Random(self.seed * 1_000_003 + case)
        kind = rng.randrange(len(_BOMB_KINDS))
        size = rng.choice(_BOMB_SIZES)
        if _BOMB_KINDS[kind].startswith("zip") and size > (64 << 20):
            size = 64 << 20  # zips of 256 MiB objects cost seconds to build, not to refuse
        data = self._bomb(_BOMB_KINDS[kind], size)
        if rng.random() < 0.3:
            data = mutate(data, rng, [data])
        return bytes([kind]) + data

    def run(self, data: bytes) -> dict[str, float]:
        from e3.errors import E3Error

        kind, bomb = _BOMB_KINDS[data[0] % len(_BOMB_KINDS)], data[1:]
        pid = os.getpid()
        before = _peak_kib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        t0 = time.monotonic()
        outcome = "accepted"
        try:
            self._read(kind, bomb)
        except E3Error as exc:
            outcome = f"refused ({exc.spec.code})"
        elapsed = time.monotonic() - t0
        grown = (_peak_kib(pid, "VmHWM") - before) * 1024
        if grown > BOMB_MEMORY:
            raise AssertionError(f"{kind}: peak memory rose {grown >> 20} MiB ({outcome})")
        if elapsed > BOMB_SECONDS:
            raise AssertionError(f"{kind}: took {elapsed:.1f} s ({outcome})")
        return {f"{kind} {outcome}": 1, "max_memory_MiB": grown / (1 << 20), "max_seconds": elapsed}

    def _read(self, kind: str, bomb: bytes) -> None:
        from e3.codec import beast2
        from e3.codec.types import BlobType, StringType
        from e3.core import package_zip
        from e3.model import wire
        from e3.model.bodies import WorkspaceRequest
        from e3.store.zipfmt import ZipLimits

        if kind in ("blob", "forged"):
            beast2.canonicalize(bomb, BlobType, limit=BOMB_LIMIT)
        elif kind == "string":
            beast2.decode(bomb, StringType, trusted=False, limit=BOMB_LIMIT)
        elif kind == "body":
            wire.decode_body(bomb, WorkspaceRequest)
        else:
            self.case_file.write_bytes(bomb)
            before = _listing(self.repo.root)
            try:
                package_zip.import_package(self.repo, self.case_file, limits=ZipLimits(*BOMB_ZIP))
            except Exception:
                if _listing(self.repo.root) != before:
                    raise AssertionError("a refused import changed the repository") from None
                raise
            from e3.core import packages

            packages.remove_package(self.repo, "bombs@1.0.0")  # accepted: start clean again
            shutil.rmtree(self.repo.root / "objects")
            (self.repo.root / "objects").mkdir()

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _peak_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0
