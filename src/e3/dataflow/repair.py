"""``e3 repo verify --repair``: recompute damaged results, say what cannot be recomputed.

An object that is missing, or whose bytes no longer match its name, is
recomputable when a task execution produced it: its damaged file is moved
aside (so the cache no longer offers it), every workspace that shows it as a
task output runs that task again (the same inputs give the same bytes, written
afresh), and cache entries no workspace needs are dropped. An object that no
execution produced — a value set by hand, part of a package — cannot be
recomputed; the report names where it is used, so it can be set or imported
again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import replace

from e3.base.paths import format_workspace_path
from e3.core import executions, retention, workspaces
from e3.core.verify import verify
from e3.dataflow.loader import load_graph
from e3.dataflow.scheduler import run_sync
from e3.errors import E3Error
from e3.model.results import VerifyReport
from e3.model.runs import StartOptions
from e3.store.repository import RepoStore


def repair(repo: RepoStore, report: VerifyReport) -> VerifyReport:
    """Repair what ``report`` found damaged; returns a fresh report with ``repaired`` filled."""
    damaged = set(report.damaged)
    producers: dict[str, list[retention.Attempt]] = {}
    for a in retention.attempts(repo):
        h = executions.output_of(repo, a.task_hash, a.inputs_hash, a.execution_id)
        if h in damaged:
            producers.setdefault(h, []).append(a)
    done: list[str] = []
    for h in producers:
        _move_aside(repo, h)
    needed = _rerun_workspaces(repo, set(producers), done)
    for h, made_by in producers.items():
        if h in needed:
            continue
        for a in made_by:  # a cached result nobody shows: forget it
            shutil.rmtree(a.path(repo), ignore_errors=True)
        done.append(f"object {h[:12]}…: dropped its {len(made_by)} cache record(s)")
    after = verify(repo)
    problems = list(after.problems)
    for h in sorted(set(after.damaged) & damaged):
        problems.append(f"cannot repair object {h[:12]}…: {_uses(repo, h)}")
    return replace(after, problems=problems, repaired=done)


def _move_aside(repo: RepoStore, h: str) -> None:
    """Move a damaged object's file out of the store (kept in ``tmp/`` for inspection)."""
    src = repo.objects.file_of(h)
    dest = repo.tmp_dir / "damaged"
    dest.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.replace(src, dest / f"{h}.beast2")


def _rerun_workspaces(repo: RepoStore, hashes: set[str], done: list[str]) -> set[str]:
    """Run, in each workspace, the tasks whose current output is a damaged object."""
    needed: set[str] = set()
    for dep in workspaces.deployed_workspaces(repo):
        try:
            graph = load_graph(repo, dep)
        except E3Error:
            continue
        refs = workspaces.read_all_refs(dep)
        names = [
            n.name
            for n in graph.tasks
            if (r := refs.get(n.output)) is not None and r.kind == "value" and r.hash in hashes
        ]
        if not names:
            continue
        outcome = run_sync(repo, dep.name, StartOptions(filters=tuple(names)))
        for n in names:
            h = refs[graph.tasks[graph.by_name[n]].output].hash or ""
            needed.add(h)
            state = "recomputed" if outcome.status == "completed" else f"run {outcome.status}"
            done.append(f"object {h[:12]}…: {state} by task {n} in workspace {dep.name}")
    return needed


def _uses(repo: RepoStore, h: str) -> str:
    """Where an unrepairable object is used, for the message."""
    for dep in workspaces.deployed_workspaces(repo):
        for path, ref in workspaces.read_all_refs(dep).items():
            if ref.kind == "value" and ref.hash == h:
                where = format_workspace_path(dep.name, path)
                return f"it is the value of {where}, which no task computes (set it again)"
    return "no task computes it (it belongs to a package or a value set by hand)"
