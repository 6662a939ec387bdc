"""What a user meets first, the same locally and through a server.

A failed task's summary carries its cause; ``e3 logs --follow`` follows a
workspace and waits for a task that has not started; ``e3 convert`` reads
untyped literals; SIGTERM cancels a remote run; the OpenAPI document describes
every body; lock conflicts name the current holder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from east import ArrayType, East, IntegerType
from fuzz.interrupts import judge

import e3
from e3.core import workspaces
from e3.store import locks
from e3.store.repository import create_repository
from tests_support import (
    DEADLINE,
    E3_BIN,
    Served,
    Target,
    background,
    export_to,
    run_cli,
    run_e3,
    shell_package,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)


def _deploy(target: Target, pkg: e3.sdk.Package, tmp_path: Path) -> None:
    for args in (
        ("package", "import", target.loc, export_to(pkg, tmp_path)),
        ("workspace", "deploy", target.loc, "ws", pkg.name),
    ):
        r = run_cli(*args)
        assert r.code == 0, r.err


def test_failure_summary_shows_the_tasks_error_text(target: Target, tmp_path: Path) -> None:
    x = e3.input("x", IntegerType, default=5)
    bad = e3.task(
        "bad",
        [x],
        East.function(
            [IntegerType],
            IntegerType,
            lambda b, v: East.value([1, 2, 3], ArrayType(IntegerType)).get(v),
        ),
    )
    _deploy(target, e3.package("oob", "1.0.0", bad), tmp_path)
    r = run_cli("start", target.loc, "ws")
    assert r.code == 1
    failed = r.out[r.out.index("Failed tasks:") :]
    assert "bad:" in failed
    assert "| Error: Array index 5 out of bounds" in failed, failed


def test_shell_failure_summary_shows_stderr(target: Target, tmp_path: Path) -> None:
    _deploy(target, shell_package("echo 'disk quota exceeded on /data' >&2; exit 3"), tmp_path)
    r = run_cli("start", target.loc, "ws")
    assert r.code == 1
    assert "t: exit code 3" in r.out
    assert "| disk quota exceeded on /data" in r.out


def _gated_two(gate: Path) -> e3.sdk.Package:
    """``a`` prints three lines, the last once ``gate`` exists; ``b`` runs after it."""
    x = e3.input("x", IntegerType, default=1)
    slow = (
        f"echo a-1; echo a-2; while [ ! -f {gate} ]; do sleep 0.05; done; echo a-3; "
        "cp {inputs[0]} {output}"
    )
    a = e3.custom_task("a", [x], IntegerType, slow)
    b = e3.custom_task("b", [a], IntegerType, "echo b-says-hi; cp {inputs[0]} {output}")
    return e3.package("gated", "1.0.0", b)


def _follower(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(E3_BIN), "logs", *args, "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _first_line(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().decode()


def test_logs_follow_a_workspace_until_the_run_ends(target: Target, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    _deploy(target, _gated_two(gate), tmp_path)
    lines = _follow_a_gated_run(target, "ws", "Following run", gate).splitlines()
    assert "[a] a-3" in lines and "[b] b-says-hi" in lines
    assert lines.index("[a] a-3") < lines.index("[b] b-says-hi")


def test_logs_follow_waits_for_a_task_that_has_not_started(target: Target, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    _deploy(target, _gated_two(gate), tmp_path)
    gate.touch()
    assert run_cli("start", target.loc, "ws").code == 0  # a previous execution of b exists
    gate.unlink()
    assert run_cli("set", target.loc, "ws.inputs.x", _east(tmp_path, "2")).code == 0
    out = _follow_a_gated_run(target, "ws.b", "Waiting for task b", gate)
    assert "b-says-hi" in out
    followed = next(ln for ln in out.splitlines() if ln.startswith("Execution: "))
    current = json.loads(run_cli("logs", target.loc, "ws.b", "--json").out)["execution_id"]
    assert followed.split()[1] == current  # the new execution, not the previous one


def _follow_a_gated_run(target: Target, what: str, first: str, gate: Path) -> str:
    """Start the gated run, follow ``what`` while it waits, open the gate; the follower's output.

    The follower's first line must start with ``first``; it must end on its own
    (exit 0) when the run does.
    """
    with background("start", target.loc, "ws") as run:
        wait_for(
            lambda: any(r["status"] == "running" for r in _runs(target)),
            "the run to start",
            proc=run.proc,
        )
        follow = _follower(target.loc, what)
        try:
            assert _first_line(follow).startswith(first)
            gate.touch()
            out, err = follow.communicate(timeout=DEADLINE)
        finally:
            gate.touch()
            follow.kill()
        assert run.finish().code == 0
    assert follow.returncode == 0, err
    return out.decode()


def _runs(target: Target) -> list[dict[str, object]]:
    r = run_cli("log", target.loc, "ws", "--json")
    return json.loads(r.out) if r.code == 0 else []


def _east(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "v.east"
    p.write_text(text)
    return p


def test_convert_reads_untyped_literals() -> None:
    r = run_e3("convert", "--to", "json", input=b"[1,2,3]\n")
    assert r.code == 0 and json.loads(r.out) == ["1", "2", "3"]
    r = run_e3("convert", "--json", input=b'(a=1.5, b="x")')
    assert r.code == 0 and json.loads(r.out) == {"a": 1.5, "b": "x"}
    r = run_e3("convert", "--to", "type", input=b"{1: [true]}")
    assert r.out.strip() == ".Dict (key=.Integer, value=.Array .Boolean)" or "Dict" in r.out
    vague = run_e3("convert", "--to", "json", input=b"[]")
    assert vague.code == 2 and "--type" in vague.err and len(vague.err_lines) == 1
    clash = run_e3("convert", "--json", "--to", "east", input=b"1")
    assert clash.code == 2 and "--json" in clash.err


def test_sigterm_cancels_a_remote_run(api_server: Served, tmp_path: Path) -> None:
    url, _path = api_server.new_repo()
    target = Target("remote", url, _path)
    _deploy(target, shell_package("sleep 30; cp {inputs[0]} {output}"), tmp_path)
    with background("start", url, "ws") as run:
        wait_for(
            lambda: any(r["status"] == "running" for r in _runs(target)),
            "the run to start",
            proc=run.proc,
        )
        os.kill(run.pid, signal.SIGTERM)
        result = run.finish()
    assert result.code == 130, result.err
    assert [r["status"] for r in _runs(target)] == ["cancelled"]


def test_openapi_describes_every_typed_body(api_server: Served) -> None:
    doc = httpx.get(f"{api_server.server.url}/api/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert {"StartOptions", "RunOutcome", "DataflowProgress", "GcPolicy"} <= set(schemas)
    start = doc["paths"]["/api/repos/{repo}/workspaces/{ws}/dataflow"]["post"]
    body = start["requestBody"]["content"]["application/beast2"]["schema"]
    assert body == {"$ref": "#/components/schemas/StartOptions"}
    assert "concurrency" in schemas["StartOptions"]["properties"]
    assert schemas["StartOptions"]["x-east-type"].startswith(".Struct")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"]["200"]["content"], (path, method)


def test_lock_conflict_names_the_current_holder(tmp_path: Path) -> None:
    from tests_support import versioned_hello

    repo, _ = create_repository(tmp_path / "repo")
    assert (
        run_cli("package", "import", repo.root, export_to(versioned_hello("1.0.0"), tmp_path)).code
        == 0
    )
    assert run_cli("workspace", "deploy", repo.root, "ws", "hello").code == 0
    # An earlier deployment by this process left its record; then a dataflow holds the locks.
    workspaces.lock_workspace(repo, "ws", "exclusive", "deployment").release()
    shared = workspaces.lock_workspace(repo, "ws", "shared", "dataflow")
    flow = locks.acquire(
        repo.dataflow_lock_path("ws"), "exclusive", operation="dataflow", label="dataflow"
    )
    try:
        r = run_e3("workspace", "deploy", repo.root, "ws", "hello")
        assert r.code == 4
        assert "dataflow" in r.err and "deployment" not in r.err, r.err
        assert str(os.getpid()) in r.err
    finally:
        flow.release()
        shared.release()


def test_licence_and_dependency_ranges() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    meta = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0"
    assert "Apache License" in (root / "LICENSE").read_text()
    deps = meta["dependencies"] + [d for g in ("server",) for d in meta["optional-dependencies"][g]]
    exact = [d for d in deps if "==" in d]
    assert exact and all(d.startswith("elaraai-east-py") for d in exact), exact
    locked = (root / "constraints.txt").read_text()
    assert "elaraai-east-py==1.0.97" in locked and "httpx==" in locked
    assert subprocess.run([sys.executable, "-c", "import e3"], check=False).returncode == 0
    assert E3_BIN.exists()


def test_an_interrupt_while_a_remote_run_starts_never_leaves_it_running(
    api_server: Served, tmp_path: Path
) -> None:
    """Ctrl-C at any moment of ``e3 start <url>`` (before the server's 202 reply too) cancels.

    Each ending is judged by the interrupt rule (:func:`fuzz.interrupts.judge`): on a
    loaded machine the earliest interrupt can still land in Python's own start-up,
    before e3 runs, which kills the process by SIGINT with nothing started.
    """
    url, _path = api_server.new_repo()
    target = Target("remote", url, _path)
    _deploy(target, shell_package("sleep 60; cp {inputs[0]} {output}"), tmp_path)
    for delay in (0.05, 0.15, 0.25, 0.35, 0.5, 0.8):
        proc = subprocess.Popen(
            [str(E3_BIN), "start", url, "ws"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=DEADLINE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # The server's tree is not compared (another process owns it); its runs are, below.
        judge(proc.returncode, out.decode(), err.decode(), tree_changed=False, normal=(0, 1))
        wait_for(
            lambda: all(r["status"] != "running" for r in _runs(target)),
            f"no run left going after an interrupt at {delay} s",
        )
    assert all(r["status"] == "cancelled" for r in _runs(target)), _runs(target)
