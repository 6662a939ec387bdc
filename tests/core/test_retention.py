"""Retention: ``e3 repo gc`` bounds run records, executions and cached results.

Nothing a workspace currently shows is ever removed, and the repository stays
whole (``repo verify`` clean) after every policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from east import East, IntegerType

import e3
from e3.model.retention import GcPolicy
from e3.store.repository import open_repository
from tests_support import Target, export_to, run_cli

pytestmark = pytest.mark.timeout(180)


def _pkg() -> e3.sdk.Package:
    """``blob`` copies its input and logs a line (so every execution has a log)."""
    x = e3.input("x", IntegerType, default=0)
    blob = e3.custom_task("blob", [x], IntegerType, "echo making-blob; cp {inputs[0]} {output}")
    return e3.package("keep", "1.0.0", blob)


def _setup(loc: str, tmp_path: Path, workspaces: tuple[str, ...] = ("ws1", "ws2")) -> None:
    assert run_cli("package", "import", loc, export_to(_pkg(), tmp_path)).code == 0
    for ws in workspaces:
        assert run_cli("workspace", "deploy", loc, ws, "keep").code == 0


def _set_and_start(loc: str, tmp_path: Path, ws: str, value: int) -> None:
    f = tmp_path / "x.east"
    f.write_text(str(value))
    assert run_cli("set", loc, f"{ws}.inputs.x", f).code == 0
    r = run_cli("start", loc, ws)
    assert r.code == 0, r.out + r.err


def _log(loc: str, ws: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(run_cli("log", loc, ws, "--json").out)
    return out


def _executions(path: Path) -> set[str]:
    root = path / "executions"
    return {
        d.name
        for task in root.iterdir()
        if task.is_dir()
        for inputs in task.iterdir()
        if inputs.is_dir()
        for d in inputs.iterdir()
    }


def _gc(loc: str, *flags: str) -> dict[str, object]:
    r = run_cli("repo", "gc", loc, "--min-age", "0", *flags, "--json")
    assert r.code == 0, r.err
    out: dict[str, object] = json.loads(r.out)
    return out


def test_keep_runs_one(target: Target, tmp_path: Path) -> None:
    _setup(target.loc, tmp_path)
    for v in (1, 2, 3):
        _set_and_start(target.loc, tmp_path, "ws1", v)
    _set_and_start(target.loc, tmp_path, "ws2", 7)
    _set_and_start(target.loc, tmp_path, "ws2", 8)
    before = _executions(target.path)
    assert len(before) == 5
    old_runs = _log(target.loc, "ws1")[:-1]
    old_ids = {
        str(t["execution_id"])
        for r in old_runs
        for t in r["task_executions"].values()  # type: ignore[attr-defined]
    }
    preview = _gc(target.loc, "--keep-runs", "1", "--dry-run")
    assert preview["removed_runs"] == 3 and preview["dry_run"] is True
    assert any("run ws1/" in line for line in preview["removed"])  # type: ignore[union-attr]
    assert len(_log(target.loc, "ws1")) == 3  # a dry run removes nothing
    res = _gc(target.loc, "--keep-runs", "1")
    assert res["removed_runs"] == 3 and res["removed_executions"] == 3
    assert [len(_log(target.loc, ws)) for ws in ("ws1", "ws2")] == [1, 1]
    after = _executions(target.path)
    assert not (after & old_ids)  # the removed runs' executions and logs are gone
    assert len(after) == 2
    assert run_cli("get", target.loc, "ws1.tasks.blob.output").out.strip() == "3"
    assert run_cli("get", target.loc, "ws2.tasks.blob.output").out.strip() == "8"
    assert "making-blob" in run_cli("logs", target.loc, "ws1.blob").out
    assert run_cli("repo", "verify", target.loc).code == 0
    assert "Cached:   1" in run_cli("start", target.loc, "ws1").out


def test_keep_executions_keeps_what_workspaces_show(tmp_path: Path) -> None:
    loc = str(tmp_path / "repo")
    assert run_cli("repo", "create", loc).code == 0
    _setup(loc, tmp_path, ("ws1",))
    for v in (1, 2, 1, 2, 3):
        _set_and_start(loc, tmp_path, "ws1", v)
    store = open_repository(loc)
    from e3.api.local import LocalRepository

    res = LocalRepository(store).gc(GcPolicy(min_age_seconds=0, keep_executions=1))
    assert res.removed_executions == 0  # one execution per (task, inputs): all are newest
    assert run_cli("repo", "verify", loc).code == 0


def test_max_size_evicts_cached_results_not_shown(tmp_path: Path) -> None:
    loc = str(tmp_path / "repo")
    assert run_cli("repo", "create", loc).code == 0
    x = e3.input("x", IntegerType, default=0)
    fat = e3.task("fat", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 3))
    zipped = export_to(e3.package("fat", "1.0.0", fat), tmp_path)
    assert run_cli("package", "import", loc, zipped).code == 0
    assert run_cli("workspace", "deploy", loc, "ws", "fat").code == 0
    for v in range(1, 9):
        _set_and_start(loc, tmp_path, "ws", v * 1000)
    objects = Path(loc) / "objects"
    swept = _gc(loc)  # unreachable objects (the old inputs) go first, without any policy
    assert swept["evicted_outputs"] == 0 and swept["deleted_objects"] >= 1
    shown = run_cli("get", loc, "ws.tasks.fat.output").out
    smallest = min(f.stat().st_size for f in objects.rglob("*.beast2"))
    limit = int(str(swept["store_bytes"])) - 3 * smallest
    res = _gc(loc, "--max-size", str(limit))
    assert res["evicted_outputs"] >= 1
    assert res["store_bytes"] <= limit
    assert sum(f.stat().st_size for f in objects.rglob("*.beast2")) <= limit
    assert run_cli("get", loc, "ws.tasks.fat.output").out == shown  # never what ws shows
    assert run_cli("repo", "verify", loc).code == 0
    r = run_cli("start", loc, "ws")
    assert "Cached:   1" in r.out


def test_max_size_keeps_outputs_a_workspace_shows_after_its_inputs_changed(
    tmp_path: Path,
) -> None:
    # Once an input is set, the shown output's execution is no longer the current
    # inputs' one; eviction took the object the workspace still showed.
    loc = str(tmp_path / "repo")
    assert run_cli("repo", "create", loc).code == 0
    _setup(loc, tmp_path, ("ws",))
    _set_and_start(loc, tmp_path, "ws", 5)
    f = tmp_path / "x.east"
    f.write_text("6")
    assert run_cli("set", loc, "ws.inputs.x", f).code == 0
    res = _gc(loc, "--max-size", "1")
    assert res["evicted_outputs"] == 0
    assert run_cli("get", loc, "ws.tasks.blob.output").out.strip() == "5"
    assert run_cli("repo", "verify", loc).code == 0


def test_older_than_keeps_each_workspaces_newest(tmp_path: Path) -> None:
    loc = str(tmp_path / "repo")
    assert run_cli("repo", "create", loc).code == 0
    _setup(loc, tmp_path, ("ws1",))
    for v in (1, 2):
        _set_and_start(loc, tmp_path, "ws1", v)
    res = _gc(loc, "--older-than", "0s")
    assert res["removed_runs"] == 1
    assert len(_log(loc, "ws1")) == 1
    bad = run_cli("repo", "gc", loc, "--older-than", "soon")
    assert bad.code == 2 and "invalid duration" in bad.err


def test_gc_reads_each_execution_record_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It read every execution's output record again for each live object: minutes
    # for a repository of a 10,000-task dataflow.
    from e3.api.local import LocalRepository
    from e3.core import executions

    loc = str(tmp_path / "repo")
    assert run_cli("repo", "create", loc).code == 0
    _setup(loc, tmp_path, ("ws",))
    for v in (1, 2, 3):
        _set_and_start(loc, tmp_path, "ws", v)
    reads: list[str] = []
    real = executions.output_of
    monkeypatch.setattr(
        executions, "output_of", lambda repo, t, i, e: reads.append(e) or real(repo, t, i, e)
    )
    LocalRepository(open_repository(loc)).gc(GcPolicy(min_age_seconds=0))
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 3
