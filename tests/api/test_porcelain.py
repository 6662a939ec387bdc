"""The porcelain's contract, checked on a local path, an in-process server and a real one.

Everything a program embedding e3 relies on: ``start`` returns at once with a
run that can be waited for, followed (``for`` and ``async for``), cancelled,
and found again by id; refusals raise at ``start``; the verbs give the same
results wherever the repository is.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from east import East, IntegerType

import e3
from e3.codec import beast2
from e3.errors import InvalidPath, LockConflict, TaskNotFound, WaitTimedOut
from e3.model.protocol import Repository
from e3.model.results import TaskStatus, WorkspaceStatus
from tests_support import DEADLINE, export_to, shell_package

pytestmark = pytest.mark.timeout(120)


def _deploy(repo: Repository, pkg: e3.sdk.Package, tmp_path: Path, ws: str = "ws") -> None:
    repo.package_import(export_to(pkg, tmp_path))
    repo.workspace_deploy(ws, pkg.name)


def _diamond() -> e3.sdk.Package:
    a = e3.input("a", IntegerType, default=10)
    b = e3.input("b", IntegerType, default=5)
    f = East.function
    left = e3.task(
        "left", [a, b], f([IntegerType, IntegerType], IntegerType, lambda _, x, y: x + y)
    )
    right = e3.task(
        "right", [a, b], f([IntegerType, IntegerType], IntegerType, lambda _, x, y: x * y)
    )
    merge = e3.task(
        "merge", [left, right], f([IntegerType, IntegerType], IntegerType, lambda _, x, y: x + y)
    )
    return e3.package("diamond", "1.0.0", merge)


def _value(repo: Repository, ws: str, *path: str) -> object:
    east_type, data = repo.dataset_get(ws, path)
    assert data is not None
    return beast2.decode(data, east_type)


def test_start_wait_and_events(repo: Repository, tmp_path: Path) -> None:
    _deploy(repo, _diamond(), tmp_path)
    run = repo.start("ws")
    kinds = [e.kind for e in run.events()]
    outcome = run.wait()
    assert outcome.status == "completed" and outcome.ok
    assert outcome.run_id == run.id and run.workspace == "ws"
    assert (outcome.counts.executed, outcome.counts.cached) == (3, 0)
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("task_completed") == 3
    assert _value(repo, "ws", "tasks", "merge", "output") == 65
    assert run.status().status == "completed"
    again = repo.start("ws").wait()
    assert (again.counts.executed, again.counts.cached) == (0, 3)


def test_events_also_stream_with_async_for(repo: Repository, tmp_path: Path) -> None:
    _deploy(repo, _diamond(), tmp_path)

    async def follow() -> tuple[list[str], str]:
        run = repo.start("ws", force=True)
        kinds = [e.kind async for e in run.events()]
        return kinds, (await run.wait_async()).status

    kinds, status = asyncio.run(follow())
    assert status == "completed" and kinds[-1] == "run_finished"


def test_runs_are_found_again_by_id(repo: Repository, tmp_path: Path) -> None:
    _deploy(repo, _diamond(), tmp_path)
    first = repo.start("ws").wait()
    second = repo.start("ws").wait()
    history = repo.runs("ws")
    assert [r.run_id for r in history] == [first.run_id, second.run_id]
    assert [r.run_id for r in repo.runs("ws", last=1)] == [second.run_id]
    assert [r.run_id for r in repo.runs("ws", last=5)] == [first.run_id, second.run_id]
    assert repo.runs("ws", last=0) == []
    # Brief records (listings): the same runs, outcomes and counts, no per-task detail.
    brief = repo.runs("ws", brief=True)
    assert [(r.run_id, r.status, r.summary) for r in brief] == [
        (r.run_id, r.status, r.summary) for r in history
    ]
    assert history[0].task_executions and not any(r.task_executions for r in brief)
    assert repo.runs("ws", brief=True) == brief  # read again, from the cache where local
    found = repo.run(first.run_id)
    assert found.workspace == "ws"
    assert found.wait(DEADLINE).status == "completed"
    assert [e.kind for e in found.events()][-1] == "run_finished"


def test_refusals_raise_at_start(repo: Repository, tmp_path: Path) -> None:
    _deploy(repo, shell_package("sleep 30; cp {inputs[0]} {output}"), tmp_path)
    with pytest.raises(TaskNotFound):
        repo.start("ws", filter="nope")
    run = repo.start("ws")
    try:
        with pytest.raises(LockConflict):
            repo.start("ws")
        with pytest.raises(WaitTimedOut):
            run.wait(timeout=0.2)
    finally:
        run.cancel()
    outcome = run.wait(DEADLINE)
    assert outcome.status == "cancelled"
    assert repo.runs("ws")[-1].status == "cancelled"


def test_cancel_keeps_finished_results(repo: Repository, tmp_path: Path) -> None:
    x = e3.input("x", IntegerType, default=1)
    quick = e3.custom_task("quick", [x], IntegerType, "cp {inputs[0]} {output}")
    slow = e3.custom_task("slow", [quick], IntegerType, "sleep 30; cp {inputs[0]} {output}")
    _deploy(repo, e3.package("qs", "1.0.0", slow), tmp_path)
    run = repo.start("ws")
    for e in run.events():
        if e.kind == "task_started" and e.task == "slow":
            t0 = time.monotonic()
            run.cancel()
    outcome = run.wait(DEADLINE)
    assert outcome.status == "cancelled" and time.monotonic() - t0 < 10
    assert outcome.counts.completed == 1
    assert _value(repo, "ws", "tasks", "quick", "output") == 1
    assert repo.start("ws", filter="quick").wait().counts.cached == 1


def test_failures_carry_their_cause(repo: Repository, tmp_path: Path) -> None:
    _deploy(repo, shell_package("echo 'no such table: users' >&2; exit 2"), tmp_path)
    outcome = repo.start("ws").wait()
    assert outcome.status == "failed" and not outcome.ok
    (problem,) = outcome.failed
    assert problem.name == "t" and "exit code 2" in problem.reason
    assert "no such table: users" in problem.stderr_tail


def test_the_status_of_a_tree_is_refused_wherever_the_repository_is(
    repo: Repository, tmp_path: Path
) -> None:
    # The server once answered a status of the root with the root's listing, which the
    # client then failed to read as a status (an internal error instead of this one).
    _deploy(repo, _diamond(), tmp_path)
    with pytest.raises(InvalidPath, match="tree, not a dataset"):
        repo.dataset_status("ws", ())
    with pytest.raises(InvalidPath, match="tree, not a dataset"):
        repo.dataset_status("ws", ("inputs",))
    assert repo.dataset_status("ws", ("inputs", "a")).status == "set"


def test_verbs_agree_wherever_the_repository_is(repo: Repository, tmp_path: Path) -> None:
    _deploy(repo, _diamond(), tmp_path)
    assert [p.ref for p in repo.package_list()] == ["diamond@1.0.0"]
    info, pkg = repo.package_object("diamond")
    assert info.version == "1.0.0" and sorted(pkg.tasks) == ["left", "merge", "right"]
    assert repo.workspace_get("ws").package_name == "diamond"
    assert [t.name for t in repo.task_list("ws")] == ["left", "right", "merge"]
    data = beast2.encode(7, IntegerType)
    repo.dataset_set("ws", ("inputs", "a"), data)
    assert _value(repo, "ws", "inputs", "a") == 7
    status = repo.workspace_status("ws")
    assert {t.name: t.state for t in status.tasks}["left"] == "ready"
    repo.start("ws").wait()
    assert repo.task_execution("ws", "merge").state == "success"
    assert repo.verify().problems == []


def test_the_status_of_some_tasks_is_theirs_in_the_whole_status(
    repo: Repository, tmp_path: Path
) -> None:
    # The web view's panel of one task asked for the whole status (1.2 s on 10,000 tasks).
    _deploy(repo, _diamond(), tmp_path)
    repo.start("ws").wait(DEADLINE)
    repo.dataset_set("ws", ("inputs", "b"), beast2.encode(6, IntegerType))  # left, right ready

    def by_name(st: WorkspaceStatus) -> dict[str, TaskStatus]:
        return {t.name: t for t in st.tasks}

    whole = repo.workspace_status("ws")
    left = repo.workspace_status("ws", tasks=["left"])
    assert by_name(left) == {"left": by_name(whole)["left"]}
    assert {d.path for d in left.datasets} == {
        ("inputs", "a"),
        ("inputs", "b"),
        ("tasks", "left", "function_ir"),
        ("tasks", "left", "output"),
    }
    merge = repo.workspace_status("ws", tasks=["merge"])  # and the tasks it waits for
    assert by_name(merge) == by_name(whole)
    assert by_name(merge)["merge"].state == "waiting"
    assert set(merge.datasets) <= set(whole.datasets)
    assert {d.path: d.state for d in merge.datasets}[("tasks", "merge", "output")] == "stale"
    with pytest.raises(TaskNotFound, match="'nope'"):
        repo.workspace_status("ws", tasks=["nope"])
