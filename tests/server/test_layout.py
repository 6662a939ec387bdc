"""The web view's layered layout and its JSON helpers (pure functions, no server)."""

from __future__ import annotations

import itertools
import random

from e3.model.results import TaskInfo
from e3.server.layout import Box, layered
from e3.server.ui_data import graph_key, graph_view, log_view


def _random_dag(n: int, seed: int) -> tuple[list[Box], list[tuple[str, str]]]:
    rng = random.Random(seed)
    boxes = [Box(f"n{i}", rng.randint(40, 200), rng.choice([22, 32])) for i in range(n)]
    edges = [
        (f"n{rng.randrange(max(0, i - 30), i)}", f"n{i}") for i in range(1, n) for _ in range(2)
    ]
    return boxes, edges


def test_every_edge_points_right_and_boxes_never_overlap() -> None:
    boxes, edges = _random_dag(300, seed=7)
    lay = layered(boxes, edges)
    assert set(lay.nodes) == {b.id for b in boxes}
    for a, b in edges:
        assert lay.nodes[a].column < lay.nodes[b].column
        assert lay.nodes[a].x + lay.nodes[a].width < lay.nodes[b].x
    by_column: dict[int, list] = {}
    for p in lay.nodes.values():
        by_column.setdefault(p.column, []).append(p)
        assert p.x >= 0 and p.x + p.width <= lay.width
        assert p.y >= 0 and p.y + p.height <= lay.height
    for column in by_column.values():
        column.sort(key=lambda p: p.y)
        for upper, lower in itertools.pairwise(column):
            assert upper.y + upper.height <= lower.y + 1e-6, (upper, lower)
    # Each edge is a polyline from the source's right side to the target's left side.
    for r in lay.edges:
        s, t = lay.nodes[r.source], lay.nodes[r.target]
        assert r.points[0] == (s.x + s.width, s.y + s.height / 2)
        assert r.points[-1] == (t.x, t.y + t.height / 2)
        assert len(r.points) == t.column - s.column + 1
    assert layered(boxes, edges) == lay  # the same graph, the same drawing


def test_a_source_sits_just_before_its_first_consumer_and_a_diamond_is_untangled() -> None:
    boxes = [Box(n, 60, 20) for n in ["a", "b", "l", "r", "m", "late", "z"]]
    edges = [("a", "l"), ("b", "l"), ("a", "r"), ("b", "r"), ("l", "m"), ("r", "m")]
    edges += [("m", "z"), ("late", "z")]
    lay = layered(boxes, edges)
    col = {n: p.column for n, p in lay.nodes.items()}
    assert col == {"a": 0, "b": 0, "l": 1, "r": 1, "m": 2, "late": 2, "z": 3}
    # The merge sits between its two branches.
    left, right, merge = lay.nodes["l"], lay.nodes["r"], lay.nodes["m"]
    assert min(left.y, right.y) < merge.y < max(left.y, right.y)


def test_the_graph_view_hides_each_task_s_own_function() -> None:
    tasks = [
        TaskInfo("left", "h1", [".tasks.left.function_ir", ".inputs.a"], ".tasks.left.output"),
        TaskInfo(
            "merge", "h2", [".tasks.merge.function_ir", ".tasks.left.output"], ".tasks.merge.output"
        ),
    ]
    view = graph_view(graph_key(tasks))
    ids = {n["id"] for n in view["nodes"]}
    assert ids == {
        "t:left",
        "t:merge",
        "d:.inputs.a",
        "d:.tasks.left.output",
        "d:.tasks.merge.output",
    }
    edges = {(e["s"], e["t"]) for e in view["edges"]}
    assert ("d:.tasks.left.output", "t:merge") in edges and (
        "t:left",
        "d:.tasks.left.output",
    ) in edges
    inputs = {n["name"]: n["input"] for n in view["nodes"] if n["kind"] == "dataset"}
    assert inputs[".inputs.a"] and not inputs[".tasks.left.output"]


def test_a_log_slice_never_splits_a_character() -> None:
    data = "é€😀".encode()  # 2, 3 and 4 bytes
    for cut in range(len(data) + 1):
        first = log_view(data[:cut], 0, len(data), complete=False)
        second = log_view(data[first["next"] :], first["next"], len(data), complete=True)
        assert first["text"] + second["text"] == "é€😀"
        assert second["complete"]


def test_the_encoded_graph_is_the_graph_view_and_leaves_the_collector_on() -> None:
    import gc
    import json

    from e3.server.ui_data import encoded_graph

    tasks = [TaskInfo("t", "h", [".tasks.t.function_ir", ".inputs.a"], ".tasks.t.output")]
    assert gc.isenabled()
    seen: list[bool] = []

    def listed() -> list[TaskInfo]:
        seen.append(gc.isenabled())
        return tasks

    body = encoded_graph(listed)
    assert seen == [False]  # paused while the tasks are read and laid out
    assert gc.isenabled()
    assert json.loads(body) == graph_view(graph_key(tasks))
    assert b" " not in body  # compact
