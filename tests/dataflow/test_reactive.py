"""``e3 set`` while ``e3 start`` runs: affected tasks re-run; merges never mix inputs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from east import East, IntegerType

import e3
from e3.core import datasets, package_zip, workspaces
from e3.dataflow.scheduler import run_sync
from e3.model.events import Event
from e3.model.runs import StartOptions
from e3.store.repository import RepoStore
from tests_support import export_to


def fives(version: str = "1.0.0") -> e3.sdk.Package:
    """x -> left = 2x, right = 3x -> merge = left + right, which is 5x unless mixed."""
    x = e3.input("x", IntegerType, default=1)
    left = e3.task("left", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 2))
    right = e3.task("right", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 3))
    merge = e3.task(
        "merge",
        [left, right],
        East.function([IntegerType, IntegerType], IntegerType, lambda b, p, q: p + q),
    )
    return e3.package("fives", version, merge)


@pytest.fixture
def repo_fives(repo: RepoStore, tmp_path: Path) -> RepoStore:
    res = package_zip.import_package(repo, export_to(fives(), tmp_path))
    workspaces.deploy(repo, "ws", f"{res.name}@{res.version}")
    return repo


@pytest.mark.parametrize("seed", range(12))
def test_set_during_run_keeps_the_diamond_consistent(repo_fives: RepoStore, seed: int) -> None:
    rnd = random.Random(seed)
    triggers = sorted(rnd.sample(range(1, 12), k=rnd.randint(1, 3)))
    current = {"x": 1}
    seen = {"n": 0}

    def on_event(e: Event) -> None:
        if e.kind in ("task_started", "task_completed", "task_cached"):
            seen["n"] += 1
            if triggers and seen["n"] == triggers[0]:
                triggers.pop(0)
                current["x"] = rnd.randint(2, 10_000)
                datasets.set_dataset_value(repo_fives, "ws", ("inputs", "x"), current["x"])

    isolation = "process" if seed % 3 == 0 else "warm"
    out = run_sync(
        repo_fives, "ws", StartOptions(isolation=isolation, concurrency=2), on_event=on_event
    )
    assert out.status == "completed"
    merged = datasets.get_value(repo_fives, "ws", ("tasks", "merge", "output"))[1]
    assert merged == 5 * current["x"], (merged, current, out.counts)
    assert merged % 5 == 0


def test_input_changes_are_reported(repo_fives: RepoStore) -> None:
    events: list[Event] = []
    done = {"set": False}

    def on_event(e: Event) -> None:
        events.append(e)
        if e.kind == "task_completed" and e.task == "left" and not done["set"]:
            done["set"] = True
            datasets.set_dataset_value(repo_fives, "ws", ("inputs", "x"), 7)

    out = run_sync(repo_fives, "ws", StartOptions(concurrency=1), on_event=on_event)
    kinds = [e.kind for e in events]
    assert "input_changed" in kinds
    assert out.counts.reexecuted >= 1
    assert datasets.get_value(repo_fives, "ws", ("tasks", "merge", "output"))[1] == 35


def test_a_set_landing_while_the_run_makes_its_results_durable_is_picked_up(
    repo_fives: RepoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's last tasks ended, its final batch was synced: a set right then still counts.

    The timing is forced: the set happens inside the first moment the plan reports
    itself finished, the latest point a set can land before the run decides to end
    (the run looks at its inputs once more there; it used to end without it).
    """
    from e3.dataflow.plan import Plan

    finished = Plan.finished
    landed: dict[str, bool] = {}

    def finished_then_set(plan: Plan) -> bool:
        done = finished(plan)
        if done and not landed:
            landed["set"] = True
            datasets.set_dataset_value(repo_fives, "ws", ("inputs", "x"), 9)
        return done

    monkeypatch.setattr(Plan, "finished", finished_then_set)
    out = run_sync(repo_fives, "ws", StartOptions(concurrency=2))
    assert landed and out.status == "completed"
    assert out.counts.reexecuted >= 1, out.counts
    assert datasets.get_value(repo_fives, "ws", ("tasks", "merge", "output"))[1] == 45


def test_a_result_found_in_the_cache_is_not_overwritten_by_an_earlier_one_of_the_run(
    repo_fives: RepoStore,
) -> None:
    """``left`` ran on x=2, its ref queued for the batch; x went back to 1 at once, so ``left``
    ran again and found its x=1 result in the cache. The queued x=2 ref must not land after
    that one: the workspace would say left = 4 beside merge = 5."""
    assert run_sync(repo_fives, "ws").status == "completed"  # x=1 is in the cache
    datasets.set_dataset_value(repo_fives, "ws", ("inputs", "x"), 2)
    done = {"set": False}

    def on_event(e: Event) -> None:
        if e.kind == "task_completed" and e.task == "left" and not done["set"]:
            done["set"] = True
            datasets.set_dataset_value(repo_fives, "ws", ("inputs", "x"), 1)

    out = run_sync(repo_fives, "ws", StartOptions(concurrency=1), on_event=on_event)
    assert done["set"] and out.status == "completed"

    def value(name: str) -> object:
        return datasets.get_value(repo_fives, "ws", ("tasks", name, "output"))[1]

    assert (value("left"), value("right"), value("merge")) == (2, 3, 5)
