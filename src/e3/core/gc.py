"""Garbage collection: retention first, then mark every reachable object and sweep the rest.

Roots: every imported package (its object, tasks, command IR and initial
values); every deployed workspace (its pinned package and every value its refs
point to, including an interrupted deploy's staged refs); every successful
execution's output; and objects named by dataflow run records. Objects younger
than ``min_age`` are never deleted, which protects writes in flight (an object
written just before the ref that will point to it). Old ``.partial`` staging
files of killed writers are removed too.

A :class:`~e3.model.retention.GcPolicy` also bounds history before the mark
(:mod:`e3.core.retention`): old run records, superseded executions, and cached
results beyond a size.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from e3.base import atomic
from e3.base.names import ObjectHash, is_hash
from e3.core import executions, package_check, packages, retention, workspaces
from e3.errors import E3Error
from e3.model.results import GcResult
from e3.model.retention import GcPolicy
from e3.records import dataset_ref
from e3.store.repository import RepoStore


def _ref_hashes(data_dir: Path) -> set[ObjectHash]:
    """The objects the ``.ref`` files under ``data_dir`` name (file names, not dataset paths)."""
    out: set[ObjectHash] = set()
    for file in workspaces.ref_file_names(data_dir):
        out.update(_ref_hash(file))
    return out


def _ref_hash(file: str) -> list[ObjectHash]:
    raw = atomic.read_bytes(file)
    if not raw:
        return []
    try:
        ref = dataset_ref.decode(raw)
    except E3Error:
        return []
    return [ObjectHash(ref.hash)] if ref.kind == "value" and ref.hash and is_hash(ref.hash) else []


def mark(repo: RepoStore) -> set[ObjectHash]:
    """Every object reachable from a root."""
    return mark_refs(repo) | _execution_outputs(repo)


def mark_refs(repo: RepoStore) -> set[ObjectHash]:
    """Every object a package or a workspace refers to (the execution cache aside)."""
    live: set[ObjectHash] = set()
    closures: dict[str, set[ObjectHash]] = {}  # workspaces of one package share it

    def closure(package_hash: str) -> set[ObjectHash]:
        if package_hash not in closures:
            try:
                closures[package_hash] = package_check.package_closure(repo, package_hash)[1]
            except E3Error:  # damaged package: keep what we can name
                closures[package_hash] = {ObjectHash(package_hash)}
        return closures[package_hash]

    for info in packages.list_packages(repo):
        live |= closure(info.hash)
    for ws in workspaces.list_workspaces(repo):
        wdir = repo.workspace_dir(ws.name)
        for sub in ("data", ".data-new", ".data-old"):
            live |= _ref_hashes(wdir / sub)
        if ws.package_hash is not None:
            live |= closure(ws.package_hash)
    return live


def _execution_outputs(repo: RepoStore) -> set[ObjectHash]:
    out: set[ObjectHash] = set()
    for a in retention.attempts(repo):
        h = executions.output_of(repo, a.task_hash, a.inputs_hash, a.execution_id)
        if h is not None:
            out.add(ObjectHash(h))
    return out


def collect(repo: RepoStore, policy: GcPolicy | None = None) -> GcResult:
    """Run a collection. Safe to run beside other commands: young objects are kept."""
    policy = policy or GcPolicy()
    dry_run, min_age = policy.dry_run, policy.min_age_seconds
    now = time.time()
    pruned = retention.Pruned()
    orphaned = retention.prune_runs(repo, policy, pruned)
    keep: set[str] = set()
    if orphaned or policy.keep_executions is not None or policy.max_size is not None:
        keep = retention.protected(repo, min_age)
        retention.prune_executions(repo, policy, orphaned, keep, pruned)
    referenced = mark_refs(repo)
    outputs = _execution_outputs(repo)  # once: it reads every execution's output record
    live = referenced | outputs
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
    if not dry_run:
        _forget_decoded_packages(repo)
    # Only what nothing but the execution cache refers to may be evicted: an object a
    # workspace or package refers to stays, whichever executions also produced it.
    size = retention.evict_to_size(repo, policy, referenced, keep, pruned)
    return GcResult(
        retained,
        deleted,
        young,
        partials,
        freed,
        dry_run,
        pruned.runs,
        pruned.executions,
        pruned.evicted,
        size,
        pruned.lines,
    )


def _forget_decoded_packages(repo: RepoStore) -> None:
    """Drop the decoded forms (``cache/packages``, ``cache/graphs``) of package objects now gone."""
    for kind in ("packages", "graphs"):
        folder = repo.root / "cache" / kind
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(folder):
                h = name.removesuffix(".json")
                if name.endswith(".json") and is_hash(h) and not repo.objects.has(h):
                    atomic.remove_file(folder / name, durable=False)


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
