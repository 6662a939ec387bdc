"""Faults of a real Dask cluster: killed workers and schedulers, versions, file systems, cancel.

Tasks leave marker files (their pid, one line per start) so a test knows,
without sleeping, when a task is running and where.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from east import East, IntegerType, StringType

import e3
from e3.store.repository import open_repository
from tests_support import (
    DEADLINE,
    assert_gone,
    background,
    export_to,
    run_cli,
    run_e3,
    wait_for,
)


def _slow_shell(name: str, marker: Path, inputs: list[object]) -> object:
    """A shell task that records its pid in ``marker``, waits (at most a minute) until
    ``marker.release`` exists, then copies its input."""
    release = marker.with_suffix(".release")
    return e3.custom_task(
        name,
        inputs,  # type: ignore[arg-type]
        IntegerType,
        f"echo $$ >> '{marker}'; for i in $(seq 600); do [ -e '{release}' ] && break; "
        f"sleep 0.1; done; cp {{inputs[0]}} {{output}}",
    )


def _repo_with(pkg: e3.sdk.Package, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    assert run_cli("package", "import", repo, export_to(pkg, tmp_path)).code == 0
    assert run_cli("workspace", "deploy", repo, "ws", pkg.name).code == 0
    return repo


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


def _executions(repo: Path) -> list[Path]:
    return [p for p in (repo / "executions").glob("*/*/*") if p.is_dir()]


def test_a_worker_killed_mid_task_is_replaced_and_the_task_recorded_once(
    tmp_path: Path, own_cluster: object
) -> None:
    cluster = own_cluster
    address = cluster.start_scheduler()  # type: ignore[attr-defined]
    for _ in range(2):
        cluster.start_worker()  # type: ignore[attr-defined]
    cluster.wait_workers(2)  # type: ignore[attr-defined]
    marker = tmp_path / "starts"
    x = e3.input("x", IntegerType, default=7)
    slow = _slow_shell("slow", marker, [x])
    after = e3.task("after", [slow], East.function([IntegerType], IntegerType, lambda b, v: v + 1))
    repo = _repo_with(e3.package("victim", "1.0.0", after), tmp_path)
    with background("start", repo, "ws", "--cluster", address) as run:
        first = int(wait_for(lambda: _lines(marker), "the task to start", proc=run.proc)[0])
        worker = _parent(first)  # the task's process is a child of its Dask worker
        assert worker in cluster.worker_pids().values()  # type: ignore[attr-defined]
        os.kill(worker, signal.SIGKILL)
        assert_gone(first)  # the worker's guardian killed the task it was running
        marker.with_suffix(".release").touch()
        result = run.finish(60)
    assert result.code == 0, result.out + result.err
    assert len(_lines(marker)) == 2  # Dask ran it again elsewhere
    assert run_cli("get", repo, "ws.tasks.after").out.strip() == "8"
    # One execution record per task: the rerun is the same execution.
    records = _executions(repo)
    assert len(records) == 2, records


def test_a_killed_scheduler_stops_the_run_and_the_next_start_resumes(
    tmp_path: Path, own_cluster: object
) -> None:
    cluster = own_cluster
    address = cluster.start_scheduler()  # type: ignore[attr-defined]
    cluster.start_worker()  # type: ignore[attr-defined]
    cluster.wait_workers(1)  # type: ignore[attr-defined]
    marker = tmp_path / "starts"
    x = e3.input("x", IntegerType, default=3)
    quick = e3.task("quick", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 10))
    slow = _slow_shell("slow", marker, [quick])
    repo = _repo_with(e3.package("cut", "1.0.0", slow), tmp_path)
    with background("start", repo, "ws", "--cluster", address) as run:
        wait_for(lambda: _lines(marker), "the slow task to start", proc=run.proc)
        cluster.kill_scheduler()  # type: ignore[attr-defined]
        result = run.finish(DEADLINE)
    assert result.code == 9, result.out + result.err
    error = result.err.strip().splitlines()
    assert len(error) == 1 and "lost the Dask scheduler" in error[0], result.err
    store = open_repository(repo)
    (record,) = [r for r in store_runs(store)]
    assert record.status == "failed" and "Dask scheduler" in (record.error or "")
    # A new cluster: only the task that was cut short runs again.
    cluster.stop()  # type: ignore[attr-defined]
    address = cluster.start_scheduler()  # type: ignore[attr-defined]
    cluster.start_worker()  # type: ignore[attr-defined]
    cluster.wait_workers(1)  # type: ignore[attr-defined]
    marker.with_suffix(".release").touch()
    r = run_e3("start", repo, "ws", "--cluster", address, "--json", timeout=120)
    assert r.code == 0, r.err
    finished = r.out.strip().splitlines()[-1]
    assert '"executed": 1' in finished and '"cached": 1' in finished, finished


def store_runs(store: object) -> list[object]:
    from e3.core import runs

    return list(runs.list_runs(store, "ws"))  # type: ignore[arg-type]


def test_a_worker_without_the_repository_gets_its_inputs_sent(
    tmp_path: Path, own_cluster: object
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    hidden = tmp_path / "data"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip("mount namespaces are not available here")
    hidden.mkdir()
    cluster = own_cluster
    address = cluster.start_scheduler()  # type: ignore[attr-defined]
    # The worker sees an empty file system where the repository is.
    cluster.start_worker(  # type: ignore[attr-defined]
        prefix=[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            f"mount -t tmpfs none '{hidden}' && exec \"$@\"",
            "sh",
        ]
    )
    cluster.wait_workers(1)  # type: ignore[attr-defined]
    big = e3.input("big", StringType)
    size = e3.task("size", [big], East.function([StringType], IntegerType, lambda b, s: s.length()))
    copy = e3.custom_task("copy", [size], IntegerType, "cp {inputs[0]} {output}")
    pkg = e3.package("bigdata", "1.0.0", copy)
    repo = _repo_with(pkg, hidden)
    value = hidden / "big.east"
    value.write_text('"' + secrets.token_hex(100_000) + '"\n')  # incompressible
    assert run_cli("set", repo, "ws.inputs.big", value).code == 0
    env = {"DASK_E3__INLINE_LIMIT": "1 KiB"}  # the 200 kB input cannot travel inline
    r = run_e3("start", repo, "ws", "--cluster", address, "--json", env=env, timeout=120)
    assert r.code == 0, r.out + r.err
    assert run_cli("get", repo, "ws.tasks.copy").out.strip() == "200000"
    # The worker got the value from the engine: it is in its cache of sent inputs.
    sent = list((tmp_path / "dask" / "workers").glob("**/objects/*.beast2"))
    assert any(p.stat().st_size > 100_000 for p in sent), sent


def test_workers_of_another_version_are_refused_before_any_task_runs(
    tmp_path: Path, own_cluster: object
) -> None:
    preload = tmp_path / "other_version.py"
    preload.write_text(
        "import e3.runners.dask.spec as spec\n"
        "spec.local_versions = lambda: ('0.0.1-other', '0.9.0')\n"
    )
    cluster = own_cluster
    address = cluster.start_scheduler()  # type: ignore[attr-defined]
    cluster.start_worker(preload=preload)  # type: ignore[attr-defined]
    cluster.wait_workers(1)  # type: ignore[attr-defined]
    marker = tmp_path / "starts"
    x = e3.input("x", IntegerType, default=1)
    repo = _repo_with(e3.package("v", "1.0.0", _slow_shell("t", marker, [x])), tmp_path)
    r = run_e3("start", repo, "ws", "--cluster", address)
    assert r.code == 4, r.out + r.err
    assert "e3 0.0.1-other, east-py 0.9.0" in r.err
    from e3.runners.dask.spec import describe_versions, local_versions

    assert describe_versions(local_versions()) in r.err
    assert not marker.exists() and _executions(repo) == []
    assert store_runs(open_repository(repo)) == []


def test_cancel_kills_the_shell_task_on_its_worker(tmp_path: Path, dask_cluster: object) -> None:
    marker = tmp_path / "starts"
    x = e3.input("x", IntegerType, default=1)
    pkg = e3.package("c", "1.0.0", _slow_shell("long", marker, [x]))
    repo_path = _repo_with(pkg, tmp_path)
    with e3.open(repo_path) as repo:
        run = repo.start("ws", cluster=dask_cluster.address)  # type: ignore[attr-defined]
        pid = int(wait_for(lambda: _lines(marker), "the task to start")[0])
        run.cancel()
        assert run.wait(DEADLINE).status == "cancelled"
        assert_gone(pid)
