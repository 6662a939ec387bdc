"""Retention: bounding the history a long-lived repository accumulates.

Run records and their event logs, execution attempts (with their logs) and
cached results pile up with every run. A :class:`~e3.model.retention.GcPolicy`
says how much to keep; this module decides what goes. It never removes what a
workspace currently shows: a run still going or a workspace's last complete run,
the executions that produced the current outputs, and any attempt still running
or younger than the policy's minimum age.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from e3.base.names import ObjectHash, is_execution_id, is_hash
from e3.core import executions, runs, tasks, workspaces
from e3.model.retention import GcPolicy
from e3.records.dataflow import DataflowRun
from e3.store.repository import RepoStore


@dataclass
class Pruned:
    """What retention removed (or, in a dry run, would remove)."""

    runs: int = 0
    executions: int = 0
    evicted: int = 0
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Attempt:
    """One execution directory."""

    task_hash: str
    inputs_hash: str
    execution_id: str

    def path(self, repo: RepoStore) -> Path:
        """Its directory."""
        return repo.execution_dir(self.task_hash, self.inputs_hash, self.execution_id)

    def label(self) -> str:
        """A short name for listings."""
        return f"{self.task_hash[:8]}/{self.inputs_hash[:8]}/{self.execution_id}"


def attempts(repo: RepoStore) -> Iterator[Attempt]:
    """Every execution directory of the repository."""
    root = repo.executions_dir
    for th in _listdir(root):
        if not is_hash(th):
            continue
        for ih in _listdir(root / th):
            if not is_hash(ih):
                continue
            for eid in _listdir(root / th / ih):
                if is_execution_id(eid):
                    yield Attempt(th, ih, eid)


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def prune_runs(repo: RepoStore, policy: GcPolicy, out: Pruned) -> set[str]:
    """Remove run records beyond the policy; returns the execution ids only they named."""
    if policy.keep_runs is None and policy.older_than_seconds is None:
        return set()
    now = time.time()
    kept_ids: set[str] = set()
    dropped_ids: set[str] = set()
    for ws in _listdir(repo.dataflows_dir):
        history = runs.list_runs(repo, ws)
        state = workspaces.read_state(repo, ws) if workspaces.exists(repo, ws) else None
        current = state.current_run_id if state else None
        for i, run in enumerate(reversed(history)):  # newest first
            if _keep_run(run, i, current, policy, now):
                kept_ids.update(t.execution_id for t in run.task_executions.values())
                continue
            dropped_ids.update(t.execution_id for t in run.task_executions.values())
            out.runs += 1
            out.lines.append(f"run {ws}/{run.run_id} ({run.status}, {run.started_at:%Y-%m-%d})")
            if not policy.dry_run:
                for path in (
                    repo.dataflow_run_path(ws, run.run_id),
                    runs.events_path(repo, ws, run.run_id),
                    runs.cancel_path(repo, ws, run.run_id),
                ):
                    path.unlink(missing_ok=True)
                runs.forget_brief(repo, ws, run.run_id)
    return dropped_ids - kept_ids


def _keep_run(
    run: DataflowRun, age_rank: int, current: str | None, p: GcPolicy, now: float
) -> bool:
    if run.status == "running" or run.run_id == current or age_rank == 0:
        return True
    if p.keep_runs is not None and age_rank >= p.keep_runs:
        return False
    older_than = p.older_than_seconds
    return older_than is None or now - run.started_at.timestamp() <= older_than


def protected(repo: RepoStore, min_age: float) -> set[str]:
    """Execution ids retention must keep: current outputs' producers, live or young attempts."""
    keep: set[str] = set()
    for dep in workspaces.deployed_workspaces(repo):
        refs = workspaces.read_all_refs(dep)
        package = tasks.package_tasks(repo, dep.state.package_hash, dep.package.tasks)
        for task_hash, task in package.values():
            ih = tasks.current_inputs_hash(refs, task.inputs)
            if ih is None:
                continue
            hit = executions.cached_output(repo, task_hash, ih)
            if hit is not None:
                keep.add(hit[0])
    cutoff = time.time() - min_age
    for a in attempts(repo):
        st = executions.read_status(repo, a.task_hash, a.inputs_hash, a.execution_id)
        if (st is not None and st.state == "running" and executions.is_live(st)) or _mtime(
            a.path(repo)
        ) > cutoff:
            keep.add(a.execution_id)
    return keep


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def prune_executions(
    repo: RepoStore, policy: GcPolicy, orphaned: set[str], keep: set[str], out: Pruned
) -> None:
    """Remove attempts only removed runs named, and attempts beyond ``keep_executions``."""
    by_pair: dict[tuple[str, str], list[Attempt]] = {}
    for a in attempts(repo):
        by_pair.setdefault((a.task_hash, a.inputs_hash), []).append(a)
    for group in by_pair.values():
        limit = policy.keep_executions
        for rank, a in enumerate(reversed(group)):  # newest first
            beyond = limit is not None and rank >= limit
            if a.execution_id in keep or not (beyond or a.execution_id in orphaned):
                continue
            out.executions += 1
            out.lines.append(f"execution {a.label()}")
            if not policy.dry_run:
                shutil.rmtree(a.path(repo), ignore_errors=True)


def evict_to_size(
    repo: RepoStore, policy: GcPolicy, reachable: set[ObjectHash], keep: set[str], out: Pruned
) -> int:
    """Evict cached results (least recently used first) until the store fits ``max_size``.

    Only objects that nothing but the execution cache refers to are candidates;
    evicting one removes the attempts whose output it is, then the object.
    Returns the store's size afterwards.
    """
    sizes: dict[str, tuple[int, float]] = {}
    for oh in repo.objects.hashes():
        h = str(oh)
        try:
            st = os.stat(repo.objects.file_of(h))
        except OSError:
            continue
        sizes[h] = (st.st_size, max(st.st_atime, st.st_mtime))
    total = sum(s for s, _ in sizes.values())
    if policy.max_size is None or total <= policy.max_size:
        return total
    producers: dict[str, list[Attempt]] = {}
    for a in attempts(repo):
        raw = executions.output_of(repo, a.task_hash, a.inputs_hash, a.execution_id)
        if raw is not None:
            producers.setdefault(raw, []).append(a)
    candidates = sorted(
        (h for h in producers if h not in reachable and h in sizes),
        key=lambda h: sizes[h][1],
    )
    for h in candidates:
        if total <= policy.max_size:
            break
        if any(a.execution_id in keep for a in producers[h]):
            continue
        out.evicted += 1
        out.lines.append(f"cached result {h[:12]}… ({sizes[h][0]} bytes)")
        total -= sizes[h][0]
        if not policy.dry_run:
            for a in producers[h]:
                shutil.rmtree(a.path(repo), ignore_errors=True)
            repo.objects.delete(h)
    return total
