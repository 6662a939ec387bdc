"""The pure planner: graph construction, selection, readiness, failure, reactivity."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e3.dataflow.graph import build_graph
from e3.dataflow.plan import Plan, State
from e3.errors import InvalidPackage, TaskNotFound
from e3.records.task import TaskObject


def t(inputs: list[str], output: str) -> TaskObject:
    return TaskObject("c" * 64, tuple(("d", p) for p in inputs), ("d", output))


def graph_of(spec: dict[str, tuple[list[str], str]]):
    return build_graph(
        {n: (f"{i:064x}", t(ins, out)) for i, (n, (ins, out)) in enumerate(sorted(spec.items()))}
    )


DIAMOND = {"left": (["a", "b"], "l"), "right": (["a", "b"], "r"), "merge": (["l", "r"], "m")}


def test_topological_order_and_roots() -> None:
    g = graph_of(DIAMOND)
    names = [n.name for n in g.tasks]
    assert names.index("merge") > names.index("left")
    assert names.index("merge") > names.index("right")
    assert g.roots == (("d", "a"), ("d", "b"))
    assert {g.tasks[d].name for d in g.tasks[g.by_name["merge"]].deps} == {"left", "right"}


def test_cycle_is_reported_with_its_tasks() -> None:
    with pytest.raises(InvalidPackage, match=r"cycle: (x -> y -> x|y -> x -> y)"):
        graph_of({"x": (["b"], "a"), "y": (["a"], "b"), "z": (["a"], "c")})


def test_two_writers_of_one_dataset() -> None:
    with pytest.raises(InvalidPackage, match="both write"):
        graph_of({"x": ([], "a"), "y": ([], "a")})


def test_select_includes_upstream_and_globs() -> None:
    g = graph_of({"a1": (["x"], "p"), "a2": (["p"], "q"), "b1": (["x"], "r")})
    assert {g.tasks[i].name for i in g.select(["a2"])} == {"a1", "a2"}
    assert {g.tasks[i].name for i in g.select(["a*"])} == {"a1", "a2"}
    assert {g.tasks[i].name for i in g.select(["b1", "a1"])} == {"a1", "b1"}
    with pytest.raises(TaskNotFound, match="nope"):
        g.select(["nope"])


def run_all(
    plan: Plan, outputs: dict[str, str] | None = None, fail: set[str] | None = None
) -> list[str]:
    """Drive a plan to the end, one task at a time; returns the launch order."""
    order = []
    while not plan.finished():
        i = plan.pop_ready()
        assert i is not None
        name = plan.graph.tasks[i].name
        plan.launch(i)
        order.append(name)
        if fail and name in fail:
            plan.fail(i, "boom")
        else:
            plan.complete(i, (outputs or {}).get(name, f"{name:>064}"))
    return order


def test_runs_everything_in_dependency_order() -> None:
    g = graph_of(DIAMOND)
    plan = Plan.create(g, {("d", "a"): "1" * 64, ("d", "b"): "2" * 64})
    order = run_all(plan)
    assert order[-1] == "merge"
    assert plan.counts().completed == 3


def test_unset_input_waits_and_skips_dependents_without_failing() -> None:
    g = graph_of(DIAMOND)
    plan = Plan.create(g, {("d", "a"): "1" * 64, ("d", "b"): None})
    assert run_all(plan) == []
    states = {g.tasks[i].name: (r.state, r.reason) for i, r in plan.runs.items()}
    assert states["left"] == (State.WAITING, "input .d.b is not set")
    assert states["merge"][0] is State.SKIPPED
    assert "waiting for task" in (states["merge"][1] or "")
    assert not plan.failed_any


def test_fail_fast_and_keep_going() -> None:
    spec = {
        "bad": (["x"], "b"),
        "after": (["b"], "c"),
        "other": (["x"], "o"),
        "later": (["o"], "l"),
    }
    g = graph_of(spec)
    fast = Plan.create(g, {("d", "x"): "1" * 64})
    order = []
    # launch "bad" first, fail it: nothing new starts afterwards
    i = fast.pop_ready()
    assert i is not None and g.tasks[i].name == "bad"
    fast.launch(i)
    skipped = fast.fail(i, "boom")
    assert [g.tasks[s].name for s in skipped] == ["after"]
    assert fast.pop_ready() is None and fast.finished()
    assert fast.counts().pending == 2
    keep = Plan.create(g, {("d", "x"): "1" * 64}, keep_going=True)
    order = run_all(keep, fail={"bad"})
    assert set(order) == {"bad", "other", "later"}
    assert keep.counts().failed == 1 and keep.counts().skipped == 1


def test_selection_runs_only_what_is_needed() -> None:
    g = graph_of({"a1": (["x"], "p"), "a2": (["p"], "q"), "b1": (["x"], "r")})
    plan = Plan.create(g, {("d", "x"): "1" * 64}, g.select(["a2"]))
    assert run_all(plan) == ["a1", "a2"]


def test_input_change_resets_completed_and_marks_running_stale() -> None:
    g = graph_of(DIAMOND)
    plan = Plan.create(g, {("d", "a"): "1" * 64, ("d", "b"): "2" * 64})
    left = plan.pop_ready()
    right = plan.pop_ready()
    assert left is not None and right is not None
    plan.launch(left)
    plan.launch(right)
    plan.complete(left, "l" * 64)
    plan.inputs_changed({("d", "a"): "9" * 64})
    assert plan.runs[left].state is State.PENDING
    assert plan.complete(right, "r" * 64) is None  # stale: ran on the old value of a
    assert plan.runs[right].state is State.PENDING
    launched = {}
    while not plan.finished():
        i = plan.pop_ready()
        assert i is not None
        la = plan.launch(i)
        launched[g.tasks[i].name] = la.input_hashes
        plan.complete(i, f"{g.tasks[i].name}2".rjust(64, "0"))
    assert launched["left"][0] == "9" * 64 and launched["right"][0] == "9" * 64
    assert plan.reexecuted == 2


def test_setting_a_missing_input_releases_waiting_tasks() -> None:
    g = graph_of(DIAMOND)
    plan = Plan.create(g, {("d", "a"): "1" * 64, ("d", "b"): None})
    assert plan.pop_ready() is None
    plan.inputs_changed({("d", "b"): "2" * 64})
    assert len(run_all(plan)) == 3


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 4))
def test_diamond_never_merges_branches_of_different_snapshots(seed: int, width: int) -> None:
    """Random interleavings of launches, completions and input changes: every merge
    runs on branch outputs computed from the same value of the root input."""
    rnd = random.Random(seed)
    spec = {f"b{k}": (["x"], f"o{k}") for k in range(width)}
    spec["merge"] = ([f"o{k}" for k in range(width)], "m")
    g = graph_of(spec)
    plan = Plan.create(g, {("d", "x"): "0" * 64})
    value_of_x = 0
    produced: dict[str, int] = {}  # output hash -> value of x it was computed from
    running: dict[int, int] = {}  # task -> x it launched with
    merges: list[set[int]] = []
    for _ in range(200):
        if plan.finished():
            break
        action = rnd.random()
        if action < 0.15:
            value_of_x += 1
            plan.inputs_changed({("d", "x"): f"{value_of_x:064x}"})
            continue
        i = plan.pop_ready()
        if i is not None and (not running or action < 0.6):
            la = plan.launch(i)
            if g.tasks[i].name == "merge":
                merges.append({produced[h] for h in la.input_hashes})
                running[i] = -1
            else:
                running[i] = int(la.input_hashes[0], 16)
            continue
        if running:
            j = rnd.choice(sorted(running))
            x = running.pop(j)
            h = f"{g.tasks[j].name}-{x}-{rnd.random()}"
            produced[h] = x
            plan.complete(j, h)
    for used in merges:
        assert len(used) == 1, f"a merge mixed values of x: {used}"
