"""``e3 start`` end to end with real east-py: results, cache, filter, failures, inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e3.codec.types import IntegerType
from e3.core import datasets, executions, package_zip, workspaces
from e3.dataflow.scheduler import run_sync
from e3.errors import TaskNotFound
from e3.model.runs import StartOptions
from e3.store.repository import RepoStore
from tests_support import export_to, failing_package, run_cli


def deploy(repo: RepoStore, zip_path: Path, ws: str = "ws") -> None:
    res = package_zip.import_package(repo, zip_path)
    workspaces.deploy(repo, ws, f"{res.name}@{res.version}")


def value(repo: RepoStore, path: str, ws: str = "ws") -> object:
    return datasets.get_value(repo, ws, tuple(path.split(".")))[1]


@pytest.fixture
def diamond(repo: RepoStore, build_example) -> RepoStore:
    deploy(repo, build_example("diamond"))
    return repo


def test_diamond_computes_and_then_is_fully_cached(diamond: RepoStore) -> None:
    events = []
    out = run_sync(diamond, "ws", on_event=events.append)
    assert out.status == "completed"
    assert (out.counts.executed, out.counts.cached) == (3, 0)
    assert value(diamond, "tasks.left.output") == 15
    assert value(diamond, "tasks.right.output") == 50
    assert value(diamond, "tasks.merge.output") == 65
    done = [e.task for e in events if e.kind == "task_completed"]
    assert done.index("merge") == 2
    again = run_sync(diamond, "ws")
    assert (again.counts.executed, again.counts.cached) == (0, 3)
    state = workspaces.read_state(diamond, "ws")
    assert state is not None and state.current_run_id == again.run_id


def test_force_reexecutes_everything(diamond: RepoStore) -> None:
    run_sync(diamond, "ws")
    forced = run_sync(diamond, "ws", StartOptions(force=True))
    assert forced.counts.executed == 3
    dep = workspaces.open_deployed(diamond, "ws")
    task_hash = dep.package.tasks["merge"]
    assert len(list(executions.all_for_task(diamond, task_hash))) == 2


def test_changed_input_reruns_only_what_depends_on_it(diamond: RepoStore) -> None:
    run_sync(diamond, "ws")
    datasets.set_dataset_value(diamond, "ws", ("inputs", "a"), 20)
    out = run_sync(diamond, "ws")
    assert out.counts.executed == 3
    assert value(diamond, "tasks.merge.output") == 25 + 100
    datasets.set_dataset_value(diamond, "ws", ("inputs", "a"), 10)
    back = run_sync(diamond, "ws")
    assert back.counts.cached == 3  # old values come straight from the cache
    assert value(diamond, "tasks.merge.output") == 65


def test_early_cutoff(repo: RepoStore, tmp_path: Path) -> None:
    """A re-run producing the same bytes leaves downstream cached."""
    from east import East

    import e3

    x = e3.input("x", IntegerType, default=3)
    parity = e3.task(
        "parity",
        [x],
        East.function([IntegerType], IntegerType, lambda b, v: East.Integer.remainder(v, 2)),
    )
    big = e3.task("big", [parity], East.function([IntegerType], IntegerType, lambda b, v: v * 1000))
    deploy(repo, export_to(e3.package("cut", "1.0.0", big), tmp_path))
    run_sync(repo, "ws")
    datasets.set_dataset_value(repo, "ws", ("inputs", "x"), 5)  # parity unchanged
    out = run_sync(repo, "ws")
    assert out.counts.executed == 1 and out.counts.cached == 1
    assert value(repo, "tasks.big.output") == 1000


def test_filter_runs_the_named_task_and_its_upstream(diamond: RepoStore) -> None:
    out = run_sync(diamond, "ws", StartOptions(filters=("merge",)))
    assert out.counts.executed == 3
    only = run_sync(diamond, "ws", StartOptions(filters=("l*",), force=True))
    assert only.counts.total == 1 and only.counts.executed == 1
    with pytest.raises(TaskNotFound, match="nope"):
        run_sync(diamond, "ws", StartOptions(filters=("nope",)))


def test_failure_skips_dependents_and_keep_going_finishes_the_rest(
    repo: RepoStore, tmp_path: Path
) -> None:
    deploy(repo, export_to(failing_package(), tmp_path))
    out = run_sync(repo, "ws", StartOptions(concurrency=1))
    assert out.status == "failed"
    assert [p.name for p in out.failed] == ["bad"]
    assert out.counts.skipped == 1  # after
    assert out.not_started  # fail-fast: some independent work never started
    kept = run_sync(repo, "ws", StartOptions(concurrency=1, keep_going=True))
    assert kept.status == "failed"
    assert value(repo, "tasks.later.output") == 3
    assert value(repo, "tasks.ok.output") == 2
    assert not kept.not_started
    dep = workspaces.open_deployed(repo, "ws")
    bad = [e for e in executions.all_for_task(repo, dep.package.tasks["bad"])]
    assert {e.status.state for e in bad if e.status} == {"failed"}
    assert {e.status.exit_code for e in bad if e.status} == {1}


def test_unset_input_waits_without_failing(repo: RepoStore, tmp_path: Path) -> None:
    from east import East

    import e3

    x = e3.input("x", IntegerType)  # no default
    y = e3.input("y", IntegerType, default=1)
    needs_x = e3.task("needs_x", [x], East.function([IntegerType], IntegerType, lambda b, v: v + 1))
    chained = e3.task(
        "chained", [needs_x], East.function([IntegerType], IntegerType, lambda b, v: v + 1)
    )
    free = e3.task("free", [y], East.function([IntegerType], IntegerType, lambda b, v: v + 1))
    deploy(repo, export_to(e3.package("waits", "1.0.0", chained, free), tmp_path))
    out = run_sync(repo, "ws")
    assert out.status == "completed"
    assert {p.name: p.reason for p in out.waiting}["needs_x"] == "input .inputs.x is not set"
    assert "chained" in {p.name: p.reason for p in out.waiting}
    assert value(repo, "tasks.free.output") == 2
    assert workspaces.read_state(repo, "ws").current_run_id is None  # type: ignore[union-attr]
    datasets.set_dataset_value(repo, "ws", ("inputs", "x"), 40)
    out = run_sync(repo, "ws")
    assert value(repo, "tasks.chained.output") == 42


def test_cli_start_output_and_exit_codes(repo: RepoStore, tmp_path: Path, build_example) -> None:
    deploy(repo, build_example("diamond"))
    r = run_cli("start", repo.root, "ws")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[:2] == ["Starting tasks in workspace: ws", "Concurrency: 4"]
    assert "  [START] merge" in lines and any(ln.startswith("  [DONE] merge [") for ln in lines)
    assert "  Executed: 3" in lines
    again = run_cli("start", repo.root, "ws", "--json")
    events = [json.loads(ln) for ln in again.out.splitlines()]
    assert next(e["event"] for e in events) == "run_started"
    assert events[-1]["event"] == "run_finished" and events[-1]["counts"]["cached"] == 3
    deploy(repo, export_to(failing_package(), tmp_path), ws="bad")
    failed = run_cli("start", repo.root, "bad")
    assert failed.code == 1
    assert "  [FAIL] bad" in failed.out and "Failed tasks:" in failed.out
    assert run_cli("start", repo.root, "nows").code == 3
    assert run_cli("start", repo.root, "ws", "--filter", "nope").code == 3


@pytest.mark.parametrize(
    "example", ["hello", "diamond", "typed_data", "shell", "platform_calls", "fanout"]
)
def test_warm_and_process_runners_give_identical_results(
    tmp_path: Path, build_example, example: str
) -> None:
    from e3.store.repository import create_repository

    results = {}
    for isolation in ("warm", "process"):
        repo, _ = create_repository(tmp_path / isolation)
        deploy(repo, build_example(example))
        out = run_sync(repo, "ws", StartOptions(isolation=isolation))
        assert out.status == "completed", out.failed
        dep = workspaces.open_deployed(repo, "ws")
        refs = workspaces.read_all_refs(dep)
        logs = {}
        for name, h in dep.package.tasks.items():
            for ex in executions.all_for_task(repo, h):
                d = ex.dir(repo)
                logs[name] = tuple(
                    (d / f).read_bytes() if (d / f).exists() else b""
                    for f in (executions.STDOUT_FILE, executions.STDERR_FILE)
                )
        results[isolation] = ({p: r.hash for p, r in refs.items()}, logs)
    assert results["warm"] == results["process"]


def test_platform_output_lands_in_the_log(repo: RepoStore, build_example) -> None:
    deploy(repo, build_example("platform_calls"))
    run_sync(repo, "ws")
    r = run_cli("logs", repo.root, "ws.fingerprint")
    assert "fingerprint of east" in r.out
    import hashlib

    assert value(repo, "tasks.fingerprint.output") == hashlib.sha256(b"east").hexdigest()


def test_run_records_and_history(diamond: RepoStore) -> None:
    run_sync(diamond, "ws")
    run_sync(diamond, "ws")
    r = run_cli("log", diamond.root, "ws")
    rows = r.out.splitlines()
    assert rows[0].split()[0] == "RUN" and len(rows) == 3
    assert "completed" in rows[1] and "0/3/0/0" in rows[1]
    js = json.loads(run_cli("log", diamond.root, "ws", "--json").out)
    assert [run["status"] for run in js] == ["completed", "completed"]


def test_workspace_status(diamond: RepoStore) -> None:
    r = run_cli("workspace", "status", diamond.root, "ws")
    assert "left: ready to run" in r.out
    assert "merge: waiting (waiting for task(s): left, right)" in r.out
    run_sync(diamond, "ws")
    r = run_cli("workspace", "status", diamond.root, "ws")
    assert "merge: up-to-date (cached)" in r.out and "All datasets up-to-date" in r.out
    datasets.set_dataset_value(diamond, "ws", ("inputs", "b"), 6)
    js = json.loads(run_cli("workspace", "status", diamond.root, "ws", "--json").out)
    states = {t["name"]: t["state"] for t in js["tasks"]}
    assert states == {"left": "ready", "right": "ready", "merge": "waiting"}
    stale = {d["path"]: d["state"] for d in js["datasets"]}
    assert stale[".tasks.merge.output"] == "stale"
    one = run_cli("workspace", "status", diamond.root, "ws", "--task", "left")
    assert "left: ready to run" in one.out and "merge" not in one.out and "right" not in one.out
    unknown = run_cli("workspace", "status", diamond.root, "ws", "--task", "nope")
    assert unknown.code != 0 and unknown.err_lines == ["Error: no task 'nope' in the workspace"]


def test_adhoc_run(diamond: RepoStore, tmp_path: Path) -> None:
    a = tmp_path / "a.east"
    a.write_text("7")
    out = tmp_path / "o.json"
    r = run_cli("run", diamond.root, "diamond/merge", a, a, "-o", out)
    assert r.code == 0, r.err
    assert json.loads(out.read_text()) == "14"
    again = run_cli("run", diamond.root, "diamond@1.0.0/merge", a, a, "-o", tmp_path / "o.east")
    assert "Cached" in again.out
    assert (tmp_path / "o.east").read_text().strip() == "14"
    bad = run_cli("run", diamond.root, "diamond/merge", a, "-o", out)
    assert bad.code == 2 and "takes 2 input(s)" in bad.err


def test_a_run_reads_the_ref_files_of_settable_inputs_and_outputs_only(
    diamond: RepoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A function IR dataset is written by deployment alone, so its hash comes from
    # the package: a fully cached run of N tasks used to read N of those files.
    run_sync(diamond, "ws")
    read: list[tuple[str, ...]] = []
    real = workspaces.read_ref
    monkeypatch.setattr(
        workspaces, "read_ref", lambda dep, path: read.append(tuple(path)) or real(dep, path)
    )
    again = run_sync(diamond, "ws")
    assert again.counts.cached == 3
    assert read and not [p for p in read if p[-1] == "function_ir"], read
    assert {p for p in read if p[0] == "inputs"} == {("inputs", "a"), ("inputs", "b")}
