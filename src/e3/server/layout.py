"""A layered (Sugiyama-style) layout of a directed acyclic graph, left to right.

The web view draws a dataflow as boxes in columns: every edge points right,
from a column to a later one. The steps are the classic ones (Sugiyama,
Tagawa and Toda, 1981), each in its simplest form that stays readable at a few
hundred nodes and fast at thousands:

1. columns: the longest path from a source, then every source moved right to
   just before its first consumer (an input used only at the end of a chain is
   drawn there, not at the far left with a long edge);
2. edges spanning several columns are split by invisible points, one per
   column crossed, so they take part in the ordering and bend around boxes;
3. order within columns: barycentre sweeps, right then left, a few times;
4. vertical positions: each column is pulled towards the mean position of its
   neighbours, as close as its order and the gaps between boxes allow (an
   isotonic regression, solved exactly by pooling adjacent violators);
5. edges become polylines through their invisible points.

Pure computation, no I/O: the same graph always gives the same drawing, so the
server caches layouts by graph.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Box:
    """A node to place, with its size."""

    id: str
    width: float
    height: float


@dataclass(frozen=True)
class Placed:
    """A placed node: its top-left corner, size and column."""

    id: str
    x: float
    y: float
    width: float
    height: float
    column: int


@dataclass(frozen=True)
class Route:
    """An edge as a polyline from the source's right side to the target's left side."""

    source: str
    target: str
    points: list[tuple[float, float]]


@dataclass
class Layout:
    """Where everything goes; ``width`` and ``height`` bound the drawing."""

    nodes: dict[str, Placed] = field(default_factory=dict)
    edges: list[Route] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0


@dataclass(frozen=True)
class Spacing:
    """Gaps of a layout (pixels)."""

    column_gap: float = 56.0
    node_gap: float = 12.0
    margin: float = 16.0
    bend_height: float = 4.0
    sweeps: int = 4


def _columns(
    ids: list[str], succ: dict[str, list[str]], pred: dict[str, list[str]]
) -> dict[str, int]:
    """Longest-path columns, sources pulled right next to their first consumer."""
    indegree = {n: len(pred[n]) for n in ids}
    ready = [n for n in ids if indegree[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop()
        order.append(n)
        for m in succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    seen = set(order)
    order += [n for n in ids if n not in seen]  # a cycle: its nodes go where they fall
    col: dict[str, int] = {}
    for n in order:
        col[n] = max((col[p] + 1 for p in pred[n] if p in col), default=0)
    for n in order:
        if not pred[n] and succ[n]:
            col[n] = max(col[n], min(col[m] for m in succ[n]) - 1)
    return col


def _pava(targets: list[float], offsets: list[float]) -> list[float]:
    """Positions closest (least squares) to ``targets`` keeping ``y[i+1] - y[i] >= gaps``.

    With ``z[i] = y[i] - offsets[i]`` (``offsets`` the cumulative gaps) the
    constraint is ``z`` non-decreasing: an isotonic regression, which pooling
    adjacent violators solves exactly in linear time.
    """
    blocks: list[list[float]] = []  # [mean, weight]
    for t, o in zip(targets, offsets, strict=True):
        blocks.append([t - o, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    out: list[float] = []
    for mean, weight in blocks:
        out += [mean] * int(weight)
    return [z + o for z, o in zip(out, offsets, strict=True)]


class _Graph:
    """The graph with its invisible bend points, columns and orders."""

    def __init__(self, boxes: list[Box], edges: list[tuple[str, str]], sp: Spacing) -> None:
        self.sp = sp
        self.size = {b.id: (b.width, b.height) for b in boxes}
        ids = [b.id for b in boxes]
        succ: dict[str, list[str]] = {n: [] for n in ids}
        pred: dict[str, list[str]] = {n: [] for n in ids}
        self.edges = [(a, b) for a, b in dict.fromkeys(edges) if a in succ and b in succ and a != b]
        for a, b in self.edges:
            succ[a].append(b)
            pred[b].append(a)
        self.col = _columns(ids, succ, pred)
        self.up: dict[str, list[str]] = defaultdict(list)
        self.down: dict[str, list[str]] = defaultdict(list)
        self.chains: list[list[str]] = []
        for a, b in self.edges:
            ca, cb = self.col[a], self.col[b]
            if cb <= ca:  # against the flow (only in a cycle): drawn straight
                self.chains.append([a, b])
                continue
            chain = [a]
            for c in range(ca + 1, cb):
                bend = f"\0{len(self.chains)}:{c}"
                self.col[bend] = c
                self.size[bend] = (0.0, sp.bend_height)
                chain.append(bend)
            chain.append(b)
            for u, v in itertools.pairwise(chain):
                self.down[u].append(v)
                self.up[v].append(u)
            self.chains.append(chain)
        ncols = max(self.col.values(), default=-1) + 1
        self.columns: list[list[str]] = [[] for _ in range(ncols)]
        for n in [*ids, *(k for k in self.col if k.startswith("\0"))]:
            self.columns[self.col[n]].append(n)

    def order(self) -> None:
        """Barycentre sweeps: each column sorted by the mean rank of its neighbours.

        A sweep that leaves every column as it was would be repeated identically, so
        the sweeps stop there (most big dataflows settle after one).
        """
        rank = {n: i for column in self.columns for i, n in enumerate(column)}
        for _ in range(self.sp.sweeps):
            before = [tuple(column) for column in self.columns]
            for cols, nbrs in ((self.columns[1:], self.up), (self.columns[-2::-1], self.down)):
                for column in cols:
                    if len(column) < 2:  # nothing to order
                        continue
                    keys = {}
                    for n in column:
                        around = nbrs.get(n)
                        keys[n] = sum(rank[m] for m in around) / len(around) if around else rank[n]
                    column.sort(key=lambda n: keys[n])
                    for i, n in enumerate(column):
                        rank[n] = i
            if before == [tuple(column) for column in self.columns]:
                break

    def place(self) -> dict[str, float]:
        """Vertical centres: each column pulled towards its neighbours, order and gaps kept.

        Sweeps stop early once one moves nothing: the next would move nothing either.
        """
        y: dict[str, float] = {}
        offsets: list[list[float]] = []
        for column in self.columns:
            acc, prev, offs = 0.0, None, []
            for n in column:
                h = self.size[n][1]
                if prev is not None:
                    acc += (self.size[prev][1] + h) / 2 + self.sp.node_gap
                offs.append(acc)
                prev = n
            offsets.append(offs)
            for n, o in zip(column, offs, strict=True):
                y[n] = o
        for _ in range(self.sp.sweeps):
            before = dict(y)
            for idx, nbrs in (
                (range(1, len(self.columns)), self.up),
                (range(len(self.columns) - 2, -1, -1), self.down),
            ):
                for i in idx:
                    column = self.columns[i]
                    if len(column) == 1:  # nothing to keep apart: straight to its target
                        (n,) = column
                        if nbrs.get(n):
                            y[n] = sum(y[m] for m in nbrs[n]) / len(nbrs[n])
                        continue
                    targets = [
                        sum(y[m] for m in nbrs[n]) / len(nbrs[n]) if nbrs.get(n) else y[n]
                        for n in column
                    ]
                    for n, v in zip(column, _pava(targets, offsets[i]), strict=True):
                        y[n] = v
            if y == before:
                break
        return y


def layered(
    boxes: list[Box], edges: list[tuple[str, str]], spacing: Spacing | None = None
) -> Layout:
    """Lay ``boxes`` out in columns so that every edge of ``edges`` points right."""
    sp = spacing or Spacing()
    if not boxes:
        return Layout(width=2 * sp.margin, height=2 * sp.margin)
    g = _Graph(boxes, edges, sp)
    g.order()
    ys = g.place()
    top = min(ys[n] - g.size[n][1] / 2 for n in ys)
    xs: dict[str, float] = {}
    x = sp.margin
    for column in g.columns:
        width = max((g.size[n][0] for n in column), default=0.0)
        for n in column:
            xs[n] = x + (width - g.size[n][0]) / 2
        x += width + sp.column_gap
    out = Layout()
    for b in boxes:
        cy = ys[b.id] - top + sp.margin
        out.nodes[b.id] = Placed(b.id, xs[b.id], cy - b.height / 2, b.width, b.height, g.col[b.id])
    for chain in g.chains:
        head, tail = out.nodes[chain[0]], out.nodes[chain[-1]]
        points = [(head.x + head.width, head.y + head.height / 2)]
        points += [(xs[n], ys[n] - top + sp.margin) for n in chain[1:-1]]
        points.append((tail.x, tail.y + tail.height / 2))
        out.edges.append(Route(head.id, tail.id, points))
    out.width = x - sp.column_gap + sp.margin
    out.height = max(p.y + p.height for p in out.nodes.values()) + sp.margin
    return out
