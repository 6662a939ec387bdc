"""Dataflows on a real Dask cluster give what the local runners give.

The cluster is real ``dask scheduler`` and ``dask worker`` processes on
127.0.0.1 (see conftest). Each test compares with a local run of the same
package, or checks what only a cluster run has (the worker in the records).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from east import East, IntegerType

import e3
from e3.errors import ClusterUnavailable, UsageError
from e3.model.runs import start_options
from e3.runners.dask.cluster import parse_address
from tests_support import export_to, run_cli, run_e3, start_server

EXAMPLES = ["hello", "diamond", "typed_data", "shell", "platform_calls"]


def _deploy(build_example: object, tmp_path: Path, example: str, name: str) -> e3.Repository:
    zip_path = build_example(example)  # type: ignore[operator]
    assert run_cli("repo", "create", tmp_path / name).code == 0
    repo = e3.open(tmp_path / name)
    repo.package_import(zip_path)
    pkg = repo.package_list()[0].name
    repo.workspace_deploy("ws", pkg)
    return repo


def _outputs_and_logs(repo: e3.Repository, run: e3.Run) -> tuple[dict[str, str], dict[str, str]]:
    outcome = run.wait(120)
    assert outcome.status == "completed", outcome
    record = run.status()
    logs = {
        t.name: repo.read_log("ws", t.name, "stdout", 0, 1 << 20).data.decode()
        for t in repo.task_list("ws")
    }
    return dict(record.output_versions or {}), logs


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_give_the_local_outputs(
    example: str, build_example: object, tmp_path: Path, dask_cluster: object
) -> None:
    address = dask_cluster.address  # type: ignore[attr-defined]
    with (
        _deploy(build_example, tmp_path, example, "local") as here,
        _deploy(build_example, tmp_path, example, "remote") as there,
    ):
        expected = _outputs_and_logs(here, here.start("ws"))
        got = _outputs_and_logs(there, there.start("ws", cluster=address))
        assert got == expected
        assert expected[0]  # the example has outputs
        # Every execution names the worker it ran on, a worker of this cluster.
        workers = set(dask_cluster.worker_pids())  # type: ignore[attr-defined]
        status = there.workspace_status("ws")
        assert {t.worker for t in status.tasks} <= workers
        assert all(t.worker for t in status.tasks)
        for t in status.tasks:
            assert there.task_execution("ws", t.name).worker == t.worker
        # A second start on the cluster finds everything cached.
        again = there.start("ws", cluster=address).wait(60)
        assert again.counts.executed == 0 and again.counts.cached == again.counts.total


def _mixed_package() -> e3.sdk.Package:
    """East → shell → East: a shell task between two East tasks."""
    x = e3.input("x", IntegerType, default=20)
    double = e3.task("double", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 2))
    copied = e3.custom_task(
        "copied", [double], IntegerType, "echo copying >&2; cp {inputs[0]} {output}"
    )
    plus = e3.task("plus", [copied], East.function([IntegerType], IntegerType, lambda b, v: v + 2))
    return e3.package("mixed", "1.0.0", plus)


def test_mixed_east_and_shell_dataflow_through_the_cli(
    tmp_path: Path, dask_cluster: object
) -> None:
    address = dask_cluster.address  # type: ignore[attr-defined]
    zip_path = export_to(_mixed_package(), tmp_path)
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    assert run_cli("package", "import", repo, zip_path).code == 0
    assert run_cli("workspace", "deploy", repo, "ws", "mixed").code == 0
    r = run_e3("start", repo, "ws", "--json", env={"E3_CLUSTER": address})
    assert r.code == 0, r.err
    events = [line for line in r.out.splitlines() if '"task_completed"' in line]
    assert len(events) == 3 and all(address.rsplit(":", 1)[0] in e for e in events)
    assert run_cli("get", repo, "ws.tasks.plus").out.strip() == "42"
    logs = run_cli("logs", repo, "ws.copied")
    assert "copying" in logs.out and "Worker: tcp://127.0.0.1:" in logs.out


def test_bad_cluster_addresses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        start_options(cluster="localhost:8786")
    with pytest.raises(UsageError):
        parse_address("local:0")
    r = run_cli("start", tmp_path, "ws", "--cluster", "nowhere")
    assert r.code == 2 and "tcp://HOST:PORT" in r.err


def test_unreachable_scheduler_refuses_the_run(build_example: object, tmp_path: Path) -> None:
    import socket

    import dask.config

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        dask.config.set({"e3.connect-timeout": "1s"}),
        _deploy(build_example, tmp_path, "hello", "repo") as repo,
    ):
        with pytest.raises(ClusterUnavailable, match="cannot reach the Dask scheduler"):
            repo.start("ws", cluster=f"tcp://127.0.0.1:{port}")
        assert repo.runs("ws") == []  # refused before the run existed


def test_a_server_started_with_a_cluster_runs_http_dataflows_there(
    build_example: object, tmp_path: Path, dask_cluster: object
) -> None:
    address = dask_cluster.address  # type: ignore[attr-defined]
    root = tmp_path / "repos"
    root.mkdir()
    server = start_server("--repos", root, "--cluster", address, log=tmp_path / "server.log")
    try:
        url = server.repo_url("team")
        assert run_cli("repo", "create", url).code == 0
        with e3.open(url) as repo:
            repo.package_import(build_example("diamond"))  # type: ignore[operator]
            repo.workspace_deploy("ws", "diamond")
            with pytest.raises(UsageError, match="this server decides where tasks run"):
                repo.start("ws", cluster="local:1")
            run = repo.start("ws")
            assert run.wait(120).status == "completed"
            workers = {e.worker for e in run.events() if e.kind == "task_completed"}
            assert workers and workers <= set(dask_cluster.worker_pids())  # type: ignore[attr-defined]
            assert run_cli("get", url, "ws.tasks.merge").out.strip() == "65"
    finally:
        server.stop()
