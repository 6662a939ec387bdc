"""One scenario suite, run twice: on a local repository path and on a real API server.

Every test receives a ``target`` (``local`` or ``remote``) and drives the CLI with its
location, so each command is checked to behave the same on a path and on
``http://127.0.0.1:<port>/repos/<name>``: same output, same exit codes, same data.
Commands run in this process (``run_cli``) except where signals or streaming matter,
which use the real console script.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from east import BlobType as EastBlobType
from east import East, IntegerType

import e3
from e3.codec import beast2
from e3.codec.types import BlobType, StringType
from tests_support import (
    E3Process,
    Served,
    Target,
    assert_gone,
    background,
    export_to,
    failing_package,
    kill_leftovers,
    run_cli,
    shell_package,
    tree_digest,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

#: Bigger than the 1 MiB a request body may carry: these go through the transfer flow.
BIG = (1 << 20) + 123_457
#: Files tasks leave outside their emptied scratch directory (removed at exit).
MARKERS = Path(tempfile.mkdtemp(prefix="e3-test-markers-"))
atexit.register(shutil.rmtree, MARKERS, True)


def ok(*args: str | os.PathLike[str]) -> str:
    """Run an e3 command that must succeed; its stdout."""
    r = run_cli(*args)
    assert r.code == 0, f"e3 {' '.join(map(str, args))} -> {r.code}: {r.err}"
    return r.out


def deploy(target: Target, zip_path: Path, ws: str = "ws") -> None:
    ok("package", "import", target.loc, zip_path)
    from zipfile import ZipFile

    with ZipFile(zip_path) as z:
        (ref,) = [n for n in z.namelist() if n.startswith("packages/")]
    name = ref.removeprefix("packages/").rsplit("/", 1)[0]
    ok("workspace", "deploy", target.loc, ws, name)


def big_blob_package(size: int = BIG) -> e3.sdk.Package:
    """A package whose input default (random bytes, incompressible) is over 1 MiB."""
    data = os.urandom(size)
    blob = e3.input("blob", EastBlobType, default=data)
    length = e3.task(
        "length", [blob], East.function([EastBlobType], IntegerType, lambda b, v: v.size())
    )
    return e3.package("bigblob", "1.0.0", length)


# ── repositories ────────────────────────────────────────────────────────────


def test_repository_status_and_removal(target: Target, api_server: Served) -> None:
    st = ok("repo", "status", target.loc)
    assert f"Repository: {target.loc}" in st
    assert "Objects: 0" in st and "Packages:\n  (none)" in st
    if target.kind == "remote":
        listed = json.loads(ok("repo", "list", api_server.server.url, "--json"))
        assert target.path.name in listed
    ok("workspace", "create", target.loc, "w1")
    refused = run_cli("repo", "remove", target.loc)
    assert refused.code == 4 and "--recursive" in refused.err
    assert target.path.exists()
    out = ok("repo", "remove", target.loc, "-r")
    assert "Removed workspace: w1" in out
    assert not target.path.exists()
    gone = run_cli("repo", "status", target.loc)
    assert gone.code == 3 and gone.err_lines[0].startswith("Error: ")


# ── packages ────────────────────────────────────────────────────────────────


def test_package_import_export_round_trip(target: Target, tmp_path: Path, build_example) -> None:
    zip_path = build_example("diamond")
    out = ok("package", "import", target.loc, zip_path)
    assert "Imported diamond@1.0.0" in out
    assert ok("package", "list", target.loc) == "Packages:\n  diamond@1.0.0\n"
    exported = tmp_path / "exported.zip"
    out = ok("package", "export", target.loc, "diamond", exported)
    assert f"Exported diamond@1.0.0 to {exported}" in out
    assert exported.read_bytes() == zip_path.read_bytes()  # deterministic, byte-identical
    again = run_cli("package", "import", target.loc, zip_path)
    assert again.code == 0  # same content: a no-op
    missing = run_cli("package", "export", target.loc, "nope", tmp_path / "x.zip")
    assert missing.code == 3 and missing.err_lines == ["Error: package nope not found"]
    assert not (tmp_path / "x.zip").exists()
    removed = ok("package", "remove", target.loc, "diamond")
    assert "Removed diamond@1.0.0" in removed
    assert ok("package", "list", target.loc) == "No packages installed\n"


def test_packages_over_one_mebibyte_travel_both_ways(target: Target, tmp_path: Path) -> None:
    zip_path = export_to(big_blob_package(), tmp_path)
    assert zip_path.stat().st_size > BIG
    ok("package", "import", target.loc, zip_path)
    exported = tmp_path / "big-exported.zip"
    ok("package", "export", target.loc, "bigblob@1.0.0", exported)
    assert exported.read_bytes() == zip_path.read_bytes()


def test_a_conflicting_import_is_refused_and_changes_nothing(
    target: Target, tmp_path: Path
) -> None:
    from tests_support import versioned_hello

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = export_to(versioned_hello("1.0.0", default=1), tmp_path / "a")
    second = export_to(versioned_hello("1.0.0", default=2), tmp_path / "b")
    ok("package", "import", target.loc, first)
    before = tree_digest(target.path)
    refused = run_cli("package", "import", target.loc, second)
    assert refused.code == 4 and "already exists" in refused.err
    assert tree_digest(target.path) == before
    forced = run_cli("package", "import", target.loc, second, "--force")
    assert forced.code == 0, forced.err


# ── workspaces ──────────────────────────────────────────────────────────────


def test_workspace_lifecycle(target: Target, tmp_path: Path, build_example) -> None:
    ok("package", "import", target.loc, build_example("hello"))
    assert "Created workspace: w2" in ok("workspace", "create", target.loc, "w2")
    assert "Deployed hello@1.0.0 to workspace: ws" in ok(
        "workspace", "deploy", target.loc, "ws", "hello"
    )
    assert ok("workspace", "list", target.loc) == (
        "Workspaces:\n  w2 (not deployed)\n  ws (hello@1.0.0)\n"
    )
    exists = run_cli("workspace", "create", target.loc, "ws")
    assert exists.code == 4
    status = ok("workspace", "status", target.loc, "ws")
    assert "Workspace: ws" in status and "double: ready to run" in status
    exported = tmp_path / "ws.zip"
    out = ok("workspace", "export", target.loc, "ws", exported, "--version", "2.0.0")
    assert "as hello@2.0.0" in out and exported.stat().st_size > 0
    out = ok("workspace", "import", target.loc, "w3", exported)
    assert "Deployed to workspace: w3" in out
    assert ok("get", target.loc, "w3.inputs.x") == "10\n"
    ok("workspace", "remove", target.loc, "w2")
    listed = json.loads(ok("workspace", "list", target.loc, "--json"))
    assert [w["name"] for w in listed] == ["w3", "ws"]
    bad = run_cli("workspace", "create", target.loc, "a.b")
    assert bad.code == 5 and bad.err_lines[0].startswith("Error: invalid workspace name")
    missing = run_cli("workspace", "remove", target.loc, "nope")
    assert missing.code == 3


# ── datasets ────────────────────────────────────────────────────────────────


def test_datasets_get_set_list_status(target: Target, tmp_path: Path, build_example) -> None:
    deploy(target, build_example("diamond"))
    assert ok("get", target.loc, "ws.inputs.a") == "10\n"
    assert ok("list", target.loc, "ws") == "inputs\ntasks\n"
    assert ok("list", target.loc, "ws", "-r").split() == [
        ".inputs.a",
        ".inputs.b",
        ".tasks.left",
        ".tasks.merge",
        ".tasks.right",
    ]
    long_listing = ok("list", target.loc, "ws.inputs", "-l")
    assert "a" in long_listing and "Integer" in long_listing
    value = tmp_path / "v.json"
    value.write_text('"42"')
    assert f"Set ws.inputs.a from {value}" in ok("set", target.loc, "ws.inputs.a", value)
    assert ok("get", target.loc, "ws.inputs.a", "-f", "json") == '"42"\n'
    status = ok("status", target.loc, "ws.inputs.a")
    assert "Status:   set" in status and "Writable: yes" in status
    as_json = json.loads(ok("status", target.loc, "ws.inputs.a", "--json"))
    assert as_json["status"] == "set" and len(as_json["hash"]) == 64

    before = tree_digest(target.path)
    wrong = tmp_path / "wrong.beast2"
    wrong.write_bytes(beast2.encode("text", StringType))
    mismatch = run_cli("set", target.loc, "ws.inputs.a", wrong)
    assert mismatch.code == 5 and "Integer" in mismatch.err and "String" in mismatch.err
    readonly = run_cli("set", target.loc, "ws.tasks.left", value)
    assert readonly.code == 6 and "not writable" in readonly.err
    unassigned = run_cli("get", target.loc, "ws.tasks.merge")
    assert unassigned.code == 3 and "unassigned" in unassigned.err.lower()
    unknown = run_cli("get", target.loc, "ws.inputs.nope")
    assert unknown.code == 3
    assert tree_digest(target.path) == before


def test_values_over_one_mebibyte_set_and_get(target: Target, tmp_path: Path) -> None:
    deploy(target, export_to(big_blob_package(), tmp_path))
    data = os.urandom(BIG + 1000)
    f = tmp_path / "big.beast2"
    f.write_bytes(beast2.encode(data, BlobType))
    ok("set", target.loc, "ws.inputs.blob", f)
    got = run_cli("get", target.loc, "ws.inputs.blob", "-f", "beast2")
    assert got.code == 0, got.err
    assert beast2.decode(got.raw, BlobType) == data
    # Refused before any byte is sent: the task output is not writable.
    before = tree_digest(target.path)
    readonly = run_cli("set", target.loc, "ws.tasks.length", f)
    assert readonly.code == 6 and "not writable" in readonly.err
    assert tree_digest(target.path) == before
    ok("start", target.loc, "ws")
    assert ok("get", target.loc, "ws.tasks.length") == f"{BIG + 1000}\n"


# ── dataflow: start, cached re-runs, failure, cancel, logs ──────────────────


def test_start_then_cached_then_reactive_to_set(
    target: Target, tmp_path: Path, build_example
) -> None:
    deploy(target, build_example("diamond"))
    first = ok("start", target.loc, "ws")
    assert "Executed: 3" in first and "[DONE] merge" in first
    assert ok("get", target.loc, "ws.tasks.merge") == "65\n"
    again = ok("start", target.loc, "ws")
    assert "Executed: 0" in again and "Cached:   3" in again
    value = tmp_path / "a.east"
    value.write_text("7")
    ok("set", target.loc, "ws.inputs.a", value)
    ok("start", target.loc, "ws")
    assert ok("get", target.loc, "ws.tasks.merge") == "47\n"  # (7+5) + 7*5
    filtered = ok("start", target.loc, "ws", "--filter", "left", "--force")
    assert "[DONE] left" in filtered and "merge" not in filtered
    runs = json.loads(ok("log", target.loc, "ws", "--json"))
    assert [r["status"] for r in runs] == ["completed"] * 4
    newest = json.loads(ok("log", target.loc, "ws", "--json", "-n", "2"))
    assert [r["run_id"] for r in newest] == [r["run_id"] for r in runs[-2:]]
    events = [json.loads(line) for line in ok("start", target.loc, "ws", "--json").splitlines()]
    assert events[-1]["event"] == "run_finished"
    assert {e["task"] for e in events if e["event"] == "task_cached"} == {"left", "right", "merge"}
    summaries = ok("logs", target.loc, "ws")
    assert "merge  [success]" in summaries


def test_a_failing_task_fails_the_run(target: Target, tmp_path: Path) -> None:
    deploy(target, export_to(failing_package(), tmp_path))
    r = run_cli("start", target.loc, "ws", "--keep-going")
    assert r.code == 1
    assert "[FAIL] bad" in r.out or "[ERR] bad" in r.out
    assert "Failed tasks:\n  bad:" in r.out
    assert ok("get", target.loc, "ws.tasks.later") == "3\n"  # the independent branch ran
    unknown = run_cli("start", target.loc, "nope")
    assert unknown.code == 3


def _pid(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") and text.strip().isdigit() else None


def test_ctrl_c_cancels_the_run_and_kills_its_tasks(target: Target, tmp_path: Path) -> None:
    marker = MARKERS / f"cancel-{uuid.uuid4().hex}"
    marker.mkdir(parents=True, exist_ok=True)
    stuck = f"echo $$ > {marker}/shell.pid; sleep 60; cp {{inputs[0]}} {{output}}"
    deploy(target, export_to(shell_package(stuck), tmp_path))
    with background("start", target.loc, "ws") as run:
        shell = wait_for(lambda: _pid(marker / "shell.pid"), "the task to start", proc=run.proc)
        try:
            run.proc.send_signal(signal.SIGINT)
            res = run.finish()
            assert res.code == 130, res.out + res.err
            assert "Aborted." in res.out
            assert "Traceback" not in res.err
            assert_gone(shell)  # the task was killed, not left running on the server
        finally:
            kill_leftovers(shell)
    runs = json.loads(ok("log", target.loc, "ws", "--json"))
    assert [r["status"] for r in runs] == ["cancelled"]
    status = ok("workspace", "status", target.loc, "ws")
    assert "in-progress" not in status


def test_a_second_start_is_refused_while_one_runs(target: Target, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    marker = MARKERS / f"second-{uuid.uuid4().hex}"
    marker.mkdir(parents=True, exist_ok=True)
    cmd = (
        f"echo $$ > {marker}/shell.pid; while [ ! -f {gate} ]; do sleep 0.02; done; "
        "cp {inputs[0]} {output}"
    )
    deploy(target, export_to(shell_package(cmd), tmp_path))
    with background("start", target.loc, "ws") as run:
        wait_for(lambda: _pid(marker / "shell.pid"), "the task to start", proc=run.proc)
        try:
            second = run_cli("start", target.loc, "ws")
            assert second.code == 4 and "is locked by" in second.err, second.err
        finally:
            gate.touch()
        assert run.finish().code == 0
    assert ok("get", target.loc, "ws.tasks.t") == "5\n"


def test_logs_follow_streams_a_running_task(target: Target, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    cmd = (
        "echo early-line; "
        f"while [ ! -f {gate} ]; do sleep 0.02; done; echo late-line; cp {{inputs[0]}} {{output}}"
    )
    deploy(target, export_to(shell_package(cmd), tmp_path))
    with background("start", target.loc, "ws") as run:

        def logged() -> bool:
            r = run_cli("logs", target.loc, "ws.t")
            return r.code == 0 and "early-line" in r.out

        wait_for(logged, "the task's first line", proc=run.proc)
        follow = E3Process("logs", target.loc, "ws.t", "--follow")
        try:
            # The follower is still waiting: the task has not finished. (A bounded wait for
            # something that must not happen; it returns at once if it does.)
            early_exit = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                early_exit = follow.proc.wait(timeout=1.0)
            gate.touch()
            followed = follow.finish()
        finally:
            follow.kill()
            gate.touch()
        assert run.finish().code == 0
    assert early_exit is None, followed.out
    assert followed.code == 0, followed.err
    lines = followed.out.splitlines()
    assert lines[0] == "Task: t"
    assert lines.index("early-line") < lines.index("late-line")


# ── garbage collection ──────────────────────────────────────────────────────


def test_gc_removes_only_unreachable_objects(target: Target, tmp_path: Path) -> None:
    from tests_support import versioned_hello

    keep = export_to(versioned_hello("1.0.0", default=3), tmp_path)
    drop = export_to(versioned_hello("2.0.0", default=4), tmp_path)
    deploy(target, keep)
    ok("package", "import", target.loc, drop)
    ok("start", target.loc, "ws")
    ok("package", "remove", target.loc, "hello@2.0.0")
    before = tree_digest(target.path)
    dry = json.loads(ok("repo", "gc", target.loc, "--dry-run", "--min-age", "0", "--json"))
    assert dry["deleted_objects"] >= 1
    assert tree_digest(target.path) == before  # a dry run deletes nothing
    young = json.loads(ok("repo", "gc", target.loc, "--json"))
    assert young["deleted_objects"] == 0 and young["skipped_young"] >= 1
    done = json.loads(ok("repo", "gc", target.loc, "--min-age", "0", "--json"))
    assert done["deleted_objects"] == dry["deleted_objects"]
    assert ok("get", target.loc, "ws.tasks.double") == "6\n"
    assert ok("get", target.loc, "ws.inputs.x") == "3\n"
    again = json.loads(ok("repo", "gc", target.loc, "--min-age", "0", "--json"))
    assert again["deleted_objects"] == 0


# ── e3 run: one task on input files ─────────────────────────────────────────


def test_run_one_task_on_input_files(target: Target, tmp_path: Path, build_example) -> None:
    ok("package", "import", target.loc, build_example("diamond"))
    a = tmp_path / "a.east"
    a.write_text("7")
    b = tmp_path / "b.json"
    b.write_text('"5"')
    out = tmp_path / "o.json"
    first = ok("run", target.loc, "diamond/merge", a, b, "-o", out)
    assert "Running diamond/merge" in first and f"Input: {a} ->" in first and "Done (" in first
    assert json.loads(out.read_text()) == "12"
    beast = tmp_path / "o.beast2"
    again = ok("run", target.loc, "diamond@1.0.0/merge", a, b, "-o", beast)
    assert "Cached (" in again
    assert beast2.decode(beast.read_bytes(), beast2.read_type(beast.read_bytes())) == 12
    arity = run_cli("run", target.loc, "diamond/merge", a, "-o", out)
    assert arity.code == 2 and "takes 2 input(s)" in arity.err
    wrong = tmp_path / "w.east"
    wrong.write_text('"text"')
    mismatch = run_cli("run", target.loc, "diamond/merge", wrong, b, "-o", tmp_path / "x.json")
    assert mismatch.code == 5 and "w.east" in mismatch.err
    assert "e3-server" not in mismatch.err  # the server's spool paths never show
    assert not (tmp_path / "x.json").exists()
    missing = run_cli("run", target.loc, "diamond/nope", a, b, "-o", out)
    assert missing.code == 3


# ── verify ──────────────────────────────────────────────────────────────────


def test_verify_finds_damage_and_names_it(target: Target, tmp_path: Path, build_example) -> None:
    deploy(target, build_example("diamond"))
    ok("start", target.loc, "ws")
    clean = json.loads(ok("repo", "verify", target.loc, "--json"))
    assert clean["problems"] == [] and clean["objects"] > 0 and clean["executions"] == 3
    # Flip a byte of one object and delete another that a ref names.
    status = json.loads(ok("status", target.loc, "ws.tasks.merge", "--json"))
    merged = target.path / "objects" / status["hash"][:2] / f"{status['hash'][2:]}.beast2"
    a_hash = json.loads(ok("status", target.loc, "ws.inputs.a", "--json"))["hash"]
    a_file = target.path / "objects" / a_hash[:2] / f"{a_hash[2:]}.beast2"
    os.chmod(merged, 0o644)
    data = bytearray(merged.read_bytes())
    data[-1] ^= 0xFF
    merged.write_bytes(bytes(data))
    a_file.unlink()
    r = run_cli("repo", "verify", target.loc)
    assert r.code == 7, r.out + r.err
    assert f"objects/{status['hash'][:2]}/{status['hash'][2:]}.beast2: content hashes to" in r.out
    assert f"names missing object {a_hash[:12]}" in r.out
    # The value of inputs.a is also the package's default: its ref and the package both miss it.
    assert r.err_lines == [f"Error: 3 problem(s) found in {target.loc}"], r.out
