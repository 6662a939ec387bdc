"""What the web view shows, as JSON-ready data built from the porcelain's results.

The page (``static/ui``) is plain JavaScript with no Beast2 decoder, so its
routes (:mod:`e3.server.routes.ui`) answer JSON; this module turns the
porcelain's dataclasses into that JSON and keeps the two caches the page
needs: graph layouts (by graph: a layout depends on nothing else) and the East
text of previewed values (by hash: paging through a value must not decode it
again for every page).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from e3.model.events import Event
from e3.model.results import ExecutionInfo, TaskInfo, WorkspaceStatus
from e3.model.runs import RunOutcome
from e3.records.dataflow import DataflowRun
from e3.server.layout import Box, layered

#: Largest value (Beast2 bytes) the view decodes for a preview.
MAX_PREVIEW_BYTES = 16 << 20
#: Characters of East text in one preview page, by default and at most.
PAGE_CHARS = 4000
MAX_PAGE_CHARS = 100_000
#: Total characters of East text kept for paging.
_TEXT_CACHE_CHARS = 32 << 20
#: Task events whose state the view shows.
TASK_EVENTS = ("task_started", "task_completed", "task_cached", "task_failed")

GraphKey = tuple[tuple[str, tuple[str, ...], str], ...]


def graph_key(tasks: list[TaskInfo]) -> GraphKey:
    """What a layout depends on: each task's name, inputs and output."""
    return tuple((t.name, tuple(t.inputs), t.output) for t in tasks)


def _function_ir(output: str) -> str:
    """The keypath of the function a task's output sits beside (``.tasks.t.function_ir``)."""
    return output.rsplit(".", 1)[0] + ".function_ir"


def _label(keypath: str) -> str:
    return keypath.removeprefix(".")


def _box_width(text: str, per_char: float, low: float, high: float) -> float:
    return max(low, min(high, len(text) * per_char + 24))


class GraphCache:
    """Laid-out graphs, as the JSON bytes sent, by package hash.

    A package's tasks never change under its hash, so its graph is laid out and
    encoded once; later requests send the same bytes.
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, package_hash: str | None) -> bytes | None:
        """The graph of a package seen before."""
        with self._lock:
            found = self._items.get(package_hash or "")
            if found is not None:
                self._items.move_to_end(package_hash or "")
            return found

    def put(self, package_hash: str | None, body: bytes) -> None:
        """Remember a package's graph."""
        if not package_hash:
            return
        with self._lock:
            self._items[package_hash] = body
            while len(self._items) > self.size:
                self._items.popitem(last=False)


GRAPHS = GraphCache()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the block runs (reference counting goes on).

    Laying out a big graph allocates hundreds of thousands of small objects, none
    in a reference cycle; in a server whose heap is large, those allocations set
    off full collections that walk the whole heap, and in the benchmark they took
    half of the layout's time. The collector is process-wide: if another thread
    paused it too, whichever finishes last finds it paused and the other resumes
    it, so it is never left off.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def encoded_graph(tasks: Callable[[], list[TaskInfo]]) -> bytes:
    """The graph view of ``tasks()`` as compact JSON bytes, computed with the collector paused."""
    with gc_paused():
        view = graph_view(graph_key(tasks()))
        return json.dumps(view, ensure_ascii=False, separators=(",", ":")).encode()


@functools.lru_cache(maxsize=32)
def graph_view(key: GraphKey) -> dict[str, Any]:
    """Nodes (tasks and datasets), edges and their layout.

    A task's own function (``.tasks.<t>.function_ir``, an input of every East
    task) is part of the task, not a node of its own: drawn, it would double
    the nodes and say nothing the task box does not.
    """
    boxes: dict[str, Box] = {}
    meta: dict[str, dict[str, Any]] = {}
    edges: list[tuple[str, str]] = []
    produced = {output for _, _, output in key}

    def dataset(path: str) -> str:
        node = f"d:{path}"
        if node not in boxes:
            boxes[node] = Box(node, _box_width(_label(path), 6.6, 56, 220), 22)
            meta[node] = {"kind": "dataset", "name": path, "input": path not in produced}
        return node

    for name, inputs, output in key:
        node = f"t:{name}"
        boxes[node] = Box(node, _box_width(name, 7.6, 80, 240), 32)
        meta[node] = {"kind": "task", "name": name}
        own = _function_ir(output)
        edges += [(dataset(p), node) for p in inputs if p != own]
        edges.append((node, dataset(output)))
    lay = layered(list(boxes.values()), edges)
    return {
        "width": round(lay.width, 1),
        "height": round(lay.height, 1),
        "nodes": [
            {
                "id": p.id,
                **meta[p.id],
                "label": _label(meta[p.id]["name"]),
                "x": round(p.x, 1),
                "y": round(p.y, 1),
                "w": round(p.width, 1),
                "h": round(p.height, 1),
            }
            for p in lay.nodes.values()
        ],
        "edges": [
            {"s": r.source, "t": r.target, "p": [[round(x, 1), round(y, 1)] for x, y in r.points]}
            for r in lay.edges
        ],
    }


def status_view(st: WorkspaceStatus) -> dict[str, Any]:
    """Every task's and dataset's state now."""
    from e3.base.paths import format_keypath

    return {
        "package": st.package,
        "lockedBy": list(st.locked_by),
        "tasks": {t.name: {"state": t.state, "detail": t.detail} for t in st.tasks},
        "datasets": {format_keypath(d.path): d.state for d in st.datasets},
    }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def run_view(r: DataflowRun) -> dict[str, Any]:
    """One run of the history."""
    duration = None
    if r.completed_at is not None:
        duration = round((r.completed_at - r.started_at).total_seconds(), 3)
    s = r.summary
    return {
        "id": r.run_id,
        "status": r.status,
        "package": r.package_ref,
        "started": _iso(r.started_at),
        "completed": _iso(r.completed_at),
        "duration": duration,
        "failedTask": r.failed_task,
        "error": r.error,
        "summary": {
            "total": s.total,
            "completed": s.completed,
            "cached": s.cached,
            "failed": s.failed,
            "skipped": s.skipped,
        },
    }


def outcome_view(outcome: RunOutcome) -> dict[str, Any]:
    """How a run ended (the last message of its event stream)."""
    return {
        "id": outcome.run_id,
        "status": outcome.status,
        "duration": round(outcome.duration, 3),
        "failed": [{"task": p.name, "reason": p.reason} for p in outcome.failed],
    }


def last_task_event(events: list[Event], task: str) -> Event | None:
    """The newest start, completion, cache hit or failure of ``task`` among ``events``."""
    for e in reversed(events):
        if e.task == task and e.kind in TASK_EVENTS:
            return e
    return None


def task_view(
    info: TaskInfo,
    st: WorkspaceStatus,
    execution: ExecutionInfo | None,
    last: tuple[str, Event] | None,
) -> dict[str, Any]:
    """A task's panel: state, inputs and output with theirs, its execution, its last event."""
    from e3.base.paths import format_keypath

    state = next((t for t in st.tasks if t.name == info.name), None)
    datasets = {format_keypath(d.path): d.state for d in st.datasets}
    own = _function_ir(info.output)
    out: dict[str, Any] = {
        "name": info.name,
        "hash": info.hash,
        "state": state.state if state else "unknown",
        "detail": state.detail if state else "",
        "dependsOn": list(state.depends_on) if state else [],
        "inputs": [
            {"path": p, "state": datasets.get(p, "unknown"), "function": p == own}
            for p in info.inputs
        ],
        "output": {"path": info.output, "state": datasets.get(info.output, "unknown")},
        "execution": None,
        "last": None,
    }
    if execution is not None:
        out["execution"] = {"id": execution.execution_id, "state": execution.state}
    if last is not None:
        run_id, e = last
        out["last"] = {
            "run": run_id,
            "event": e.kind,
            "cached": e.kind == "task_cached",
            "duration": e.duration,
            "worker": e.worker or "this machine",
            "exitCode": e.exit_code,
            "detail": e.detail,
            "stderr": e.stderr,
            "executionId": e.execution_id,
        }
    return out


def log_view(data: bytes, offset: int, total: int, complete: bool) -> dict[str, Any]:
    """A slice of a log as text, cut before a character split between two slices."""
    cut = len(data)
    if not complete:
        # Up to 3 trailing bytes of an unfinished UTF-8 character wait for the next slice.
        for back in range(1, min(4, len(data)) + 1):
            byte = data[-back]
            if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): is its sequence complete?
                need = 1 if byte < 0x80 else 2 if byte >> 5 == 6 else 3 if byte >> 4 == 14 else 4
                if need > back:
                    cut = len(data) - back
                break
    return {
        "text": data[:cut].decode("utf-8", "replace"),
        "offset": offset,
        "next": offset + cut,
        "total": total,
        "complete": complete and offset + cut >= total,
    }


class TextCache:
    """East text of recently previewed values, by hash (bounded in characters)."""

    def __init__(self, limit: int = _TEXT_CACHE_CHARS) -> None:
        self.limit = limit
        self._items: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[str, str] | None:
        """``(type text, value text)`` if cached."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, item: tuple[str, str]) -> None:
        """Remember a value's text, forgetting the oldest beyond the limit."""
        with self._lock:
            if key in self._items:
                return
            self._items[key] = item
            self._size += len(item[1])
            while self._size > self.limit and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._size -= len(old[1])


TEXTS = TextCache()


def preview_view(east_type: Any, data: bytes | None, offset: int, limit: int) -> dict[str, Any]:
    """A page of a value's East text (``offset``/``limit`` in characters)."""
    import hashlib

    from e3.codec import beast2
    from e3.codec.text import to_east
    from e3.codec.types import print_type

    type_text = print_type(east_type)
    if data is None:
        return {"type": type_text, "text": "null", "offset": 0, "next": 4, "total": 4}
    if len(data) > MAX_PREVIEW_BYTES:
        return {
            "type": type_text,
            "tooLarge": len(data),
            "text": "",
            "offset": 0,
            "next": 0,
            "total": 0,
        }
    key = hashlib.sha256(data).hexdigest()
    cached = TEXTS.get(key)
    if cached is None:
        cached = (type_text, to_east(beast2.decode(data, east_type), east_type))
        TEXTS.put(key, cached)
    text = cached[1]
    page = text[offset : offset + limit]
    return {
        "type": type_text,
        "hash": key,
        "text": page,
        "offset": offset,
        "next": offset + len(page),
        "total": len(text),
    }
