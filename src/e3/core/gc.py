"""Garbage collection: mark every reachable object, sweep the old unreachable ones.

Roots: every imported package (its object, tasks, command IR and initial
values); every deployed workspace (its pinned package and every value its refs
point to, including an interrupted deploy's staged refs); every successful
execution's output; and objects named by dataflow run records. Objects younger
than ``min_age`` are never deleted, which protects writes in flight (an object
written just before the ref that will point to it). Old ``.partial`` staging
files of killed writers are removed too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from e3.base.names import ObjectHash, is_hash
from e3.core import packages, workspaces
from e3.errors import E3Error
from e3.model.results import GcResult
from e3.records import dataset_ref
from e3.store import atomic
from e3.store.repository import RepoStore

DEFAULT_MIN_AGE_SECONDS = 60.0


def _ref_hashes(data_dir: Path) -> set[ObjectHash]:
    out: set[ObjectHash] = set()
    for _path, file in workspaces.iter_ref_files(data_dir):
        raw = atomic.read_bytes(file)
        if not raw:
            continue
        try:
            ref = dataset_ref.decode(raw)
        except E3Error:
            continue
        if ref.kind == "value" and ref.hash and is_hash(ref.hash):
            out.add(ObjectHash(ref.hash))
    return out


def mark(repo: RepoStore) -> set[ObjectHash]:
    """Every object reachable from a root."""
    live: set[ObjectHash] = set()
    for info in packages.list_packages(repo):
        try:
            _pkg, objs = packages.package_closure(repo, info.hash)
            live |= objs
        except E3Error:
            live.add(ObjectHash(info.hash))  # damaged package: keep what we can name
    for ws in workspaces.list_workspaces(repo):
        wdir = repo.workspace_dir(ws.name)
        for sub in ("data", ".data-new", ".data-old"):
            live |= _ref_hashes(wdir / sub)
        if ws.package_hash is not None:
            try:
                _pkg, objs = packages.package_closure(repo, ws.package_hash)
                live |= objs
            except E3Error:
                live.add(ObjectHash(ws.package_hash))
    live |= _execution_outputs(repo)
    return live


def _execution_outputs(repo: RepoStore) -> set[ObjectHash]:
    out: set[ObjectHash] = set()
    root = repo.executions_dir
    for dirpath, _dirs, files in os.walk(root):
        if "output" in files:
            raw = atomic.read_bytes(Path(dirpath) / "output")
            if raw:
                h = raw.decode("utf-8", "replace").strip()
                if is_hash(h):
                    out.add(ObjectHash(h))
    return out


def collect(
    repo: RepoStore, *, dry_run: bool = False, min_age: float = DEFAULT_MIN_AGE_SECONDS
) -> GcResult:
    """Run a collection. Safe to run beside other commands: young objects are kept."""
    now = time.time()
    live = mark(repo)
    retained = deleted = young = freed = 0
    for h in list(repo.objects.hashes()):
        if h in live:
            retained += 1
            continue
        try:
            info = repo.objects.info(h)
        except E3Error:
            continue
        if now - info.mtime < min_age:
            young += 1
            continue
        deleted += 1
        freed += info.size
        if not dry_run:
            repo.objects.delete(h)
    partials = 0
    for p in _staging_leftovers(repo):
        try:
            if now - p.stat().st_mtime < min_age:
                continue
        except OSError:
            continue
        partials += 1
        if not dry_run:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                atomic.remove_file(p, durable=False)
    return GcResult(retained, deleted, young, partials, freed, dry_run)


def _staging_leftovers(repo: RepoStore) -> list[Path]:
    """Leftovers of killed writers.

    ``.partial`` staging files anywhere in the repository, and task scratch
    directories a killed run left in ``tmp/``.
    """
    found = list(repo.objects.partial_files())
    for top in (repo.packages_dir, repo.workspaces_dir, repo.executions_dir, repo.dataflows_dir):
        for dirpath, _dirs, files in os.walk(top):
            found.extend(Path(dirpath) / f for f in files if f.endswith(atomic.PARTIAL_SUFFIX))
    with contextlib.suppress(FileNotFoundError):
        found.extend(repo.tmp_dir / n for n in os.listdir(repo.tmp_dir))
    return found
