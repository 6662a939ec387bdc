"""What a cached start does, and does not do.

It looks first where the workspace's last complete run found each result, which
skips listing every task's attempts. That must never cost a result: the
workspace keeps the attempt it used even when a newer one exists for the same
inputs (its outputs stay put), and a hinted attempt whose output is missing
falls back to the others, or to running the task. And a start that ran nothing
and moved no ref has nothing for the closing file-system sync to make durable.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from east import IntegerType

import e3
from e3.base.names import new_uuid7
from e3.codec import beast2
from e3.core import executions, runs
from e3.store.repository import open_repository
from tests_support import DEADLINE, E3_BIN, export_to, run_cli


def _repo(tmp_path: Path) -> Path:
    """Workspace ``ws``: ``x`` (1) → shell task ``copy`` → ``.tasks.copy``."""
    x = e3.input("x", IntegerType, default=1)
    copy = e3.custom_task("copy", [x], IntegerType, "cp {inputs[0]} {output}")
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    assert (
        run_cli("package", "import", repo, export_to(e3.package("p", "1.0.0", copy), tmp_path)).code
        == 0
    )
    assert run_cli("workspace", "deploy", repo, "ws", "p").code == 0
    assert run_cli("start", repo, "ws").code == 0
    return repo


def _attempt_dir(repo: Path) -> Path:
    """The one attempt of ``copy`` so far."""
    (status,) = repo.glob("executions/*/*/*/status.beast2")
    return status.parent


def _used(repo: Path) -> str:
    """The execution id the workspace's newest run used for ``copy``."""
    store = open_repository(repo)
    (newest,) = runs.list_runs(store, "ws", last=1)
    return newest.task_executions["copy"].execution_id


def test_a_cached_start_keeps_the_attempt_it_used_though_a_newer_one_exists(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path)
    first = _attempt_dir(repo)
    store = open_repository(repo)
    other = store.objects.put(beast2.encode(99, IntegerType))
    newer = first.parent / new_uuid7()
    shutil.copytree(first, newer)
    (newer / executions.OUTPUT_FILE).write_text(other)

    assert "Cached:   1" in run_cli("start", repo, "ws").out
    assert _used(repo) == first.name
    assert run_cli("get", repo, "ws.tasks.copy").out.strip() == "1"

    # Without the hint (the last run's record gone), the newest attempt is the one taken.
    for record in (repo / "dataflows" / "ws").glob("*.beast2"):
        record.unlink()
    assert "Cached:   1" in run_cli("start", repo, "ws").out
    assert run_cli("get", repo, "ws.tasks.copy").out.strip() == "99"


def test_a_hinted_attempt_whose_output_is_missing_falls_back_to_running_the_task(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path)
    first = _attempt_dir(repo)
    (first / executions.OUTPUT_FILE).write_text("0" * 64)  # no such object

    out = run_cli("start", repo, "ws").out
    assert "Executed: 1" in out and "Cached:   0" in out
    assert _used(repo) != first.name
    assert run_cli("get", repo, "ws.tasks.copy").out.strip() == "1"


def _syncfs_calls(repo: Path, tmp_path: Path) -> int:
    """``syncfs`` calls of an ``e3 start`` of ``ws``, traced."""
    trace = tmp_path / "trace"
    subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=syncfs", "-o", trace, E3_BIN, "start", repo, "ws"],
        check=True, capture_output=True, timeout=DEADLINE,
    )  # fmt: skip
    return trace.read_text().count("syncfs(")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_only_a_start_that_wrote_results_ends_with_a_file_system_sync(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    assert _syncfs_calls(repo, tmp_path) == 0  # all cached, every ref already in place
    (tmp_path / "x.east").write_text("2")
    assert run_cli("set", repo, "ws.inputs.x", tmp_path / "x.east").code == 0
    assert _syncfs_calls(repo, tmp_path) >= 1  # ran copy: its output is made durable
    assert run_cli("get", repo, "ws.tasks.copy").out.strip() == "2"
