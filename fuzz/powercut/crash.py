"""Crash states: what a power cut at a given moment may leave on disk.

A *cut* ``k`` is a moment of the recording: the first ``k`` ops had completed
(and any op that had begun but not completed may or may not have happened).
What survives is every op made **durable** by a sync that returned before the
cut, plus some of the others, as a file-system model allows. Two models:

``ext4``
    ext4's default ``data=ordered`` journal, without relying on its
    ``auto_da_alloc`` heuristics. Namespace and size changes (create, link,
    unlink, rename, exchange, truncate) reach the disk in the order they were
    made: a crash keeps a *prefix* of them. An ``fsync`` of a file or
    directory commits the journal up to the last change of that inode (so, as
    on real ext4, it also keeps the entry naming a new file); ``syncfs`` and
    ``sync`` commit everything that completed before they began. File data is
    written back a 4 KiB page at a time in no particular order: any page not
    synced may be lost, leaving a zero-length or zero-filled file under a name
    the journal kept.

``posix``
    Only what was explicitly synced survives for sure; anything else may
    survive or not, independently and in any order. ``fsync`` of a file keeps
    its data and size but not its name; ``fsync`` of a directory keeps the
    entries it held when the fsync began (a new name, a rename, a removal);
    ``syncfs`` keeps everything. The sample with nothing optional kept is the
    strict "only what was synced survives" state.

Either way a state is rebuilt by replaying the kept ops, in their original
order, on the initial state of the world, then written out as a directory.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fuzz.powercut.ops import Frozen, Op

PAGE = 4096
MODELS = ("ext4", "posix")
_NEVER = 1 << 62


@dataclass(frozen=True)
class Recording:
    """What a traced run left: the initial world, the ops, and the promises it started with."""

    root: int
    initial: dict[int, Frozen]
    ops: list[Op]
    initial_promises: frozenset[str]


def _pages(op: Op) -> range:
    return range(op.offset // PAGE, (op.offset + len(op.data) - 1) // PAGE + 1)


class Durability:
    """For one model: when each op becomes durable, and (ext4) the forced journal prefix."""

    def __init__(self, rec: Recording, model: str) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}")
        self.model = model
        self.ops = rec.ops
        self.durable_at = [_NEVER] * len(rec.ops)
        #: ext4: after sync op p completes, every metadata op with index <= forced[p] is kept.
        self.forced_after: list[int] = [-1] * len(rec.ops)
        by_data: dict[int, list[int]] = {}
        by_parent: dict[int, list[int]] = {}
        for op in rec.ops:
            if op.kind in ("write", "truncate"):
                by_data.setdefault(op.ino, []).append(op.index)
            elif op.is_metadata:
                for parent in {op.parent, op.parent2} - {-1}:
                    by_parent.setdefault(parent, []).append(op.index)
        forced = -1
        for op in rec.ops:
            if op.kind == "sync":
                forced = max(forced, self._apply_sync(op, by_data, by_parent))
            self.forced_after[op.index] = forced

    def _mark(self, indices: Iterator[int] | list[int] | range, cutoff: int, at: int) -> None:
        for i in indices:
            if i >= cutoff:
                break
            if self.durable_at[i] == _NEVER and self.ops[i].kind not in ("sync", "ack", "begin"):
                self.durable_at[i] = at

    def _apply_sync(
        self, sync: Op, by_data: dict[int, list[int]], by_parent: dict[int, list[int]]
    ) -> int:
        """Mark what ``sync`` makes durable; return the journal prefix it forces (ext4)."""
        if sync.scope == "fs":
            self._mark(range(sync.cutoff), sync.cutoff, sync.index)
            return sync.cutoff - 1
        if sync.scope in ("file", "data"):
            self._mark(by_data.get(sync.ino, []), sync.cutoff, sync.index)
        if self.model == "posix":
            if sync.scope == "dir":
                self._mark(by_parent.get(sync.ino, []), sync.cutoff, sync.index)
            return -1
        return sync.touched

    def forced(self, cut: int) -> int:
        """ext4: the last metadata op index the journal must have kept at ``cut``."""
        return self.forced_after[cut - 1] if cut > 0 else -1


@dataclass(frozen=True)
class Selection:
    """The ops a crash state keeps: whole ops, and for writes the pages kept."""

    cut: int
    whole: frozenset[int]
    pages: tuple[tuple[int, frozenset[int]], ...]  # (write op index, kept page numbers)
    label: str


def candidates(ops: list[Op], cut: int) -> list[int]:
    """Ops completed before the cut, plus those in flight at it (begun, not completed)."""
    line = ops[cut - 1].exit_line if cut > 0 else 0
    out = list(range(cut))
    for op in ops[cut:]:
        if op.entry_line < line:
            out.append(op.index)
    return [i for i in out if ops[i].kind not in ("sync", "ack", "begin")]


def sample(dur: Durability, cut: int, rng: random.Random, keep: float, depth: float) -> Selection:
    """One crash state at ``cut``: durable ops, plus optional ones kept with probability ``keep``.

    ext4 keeps a journal prefix reaching ``depth`` (0: only what was forced, 1:
    everything) of the way through the optional metadata ops.
    """
    ops = dur.ops
    cands = candidates(ops, cut)
    whole: set[int] = set()
    pages: dict[int, frozenset[int]] = {}
    if dur.model == "ext4":
        meta = [i for i in cands if ops[i].is_metadata]
        forced = dur.forced(cut)
        optional = [i for i in meta if i > forced and dur.durable_at[i] >= cut]
        reach = int(depth * len(optional))
        last = optional[reach - 1] if reach > 0 else forced
        whole.update(i for i in meta if i <= max(forced, last) or dur.durable_at[i] < cut)
    for i in cands:
        op = ops[i]
        durable = dur.durable_at[i] < cut
        if op.kind == "write":
            kept = frozenset(p for p in _pages(op) if durable or rng.random() < keep)
            if kept:
                pages[i] = kept
        elif dur.model == "posix" and (durable or rng.random() < keep):
            whole.add(i)
    label = f"{dur.model} cut {cut} keep {keep:.2f}" + (
        f" depth {depth:.2f}" if dur.model == "ext4" else ""
    )
    return Selection(cut, frozenset(whole), tuple(sorted(pages.items())), label)


def selections(rec: Recording, model: str, rng: random.Random) -> Iterator[Selection]:
    """Crash states to try: every sync and marker boundary first (in four shapes), then random.

    The shapes at a boundary: nothing optional kept (the strict state), everything
    kept (what a process kill leaves), and for ext4 the two mixes of a full or
    forced-only journal with all or no unsynced data.
    """
    ops = rec.ops
    dur = Durability(rec, model)
    marks = [op.index for op in ops if op.kind in ("sync", "ack", "begin")]
    boundaries = sorted({0, len(ops)} | {c for i in marks for c in (i, i + 1)})
    rng.shuffle(boundaries)
    for keep, depth in [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0)]:
        for cut in boundaries:
            yield sample(dur, cut, rng, keep, depth)
    while True:
        cut = rng.randint(0, len(ops))
        keep, depth = rng.choice([0.0, 1.0, rng.random()]), rng.random()
        yield sample(dur, cut, rng, keep, depth)


def distinct_states(
    rec: Recording,
    model: str,
    rng: random.Random,
    limit: int,
    content_matters: Callable[[str], bool] = lambda rel: True,
) -> Iterator[tuple[Selection, State]]:
    """Up to ``limit`` crash states that differ from each other.

    Two states differ if their files do (:func:`digest`) or if what was promised
    before their cuts does: the same files after an acknowledgement or a sync
    are checked against more. Gives up after 30 samples per state wanted.
    """
    promised = [0]
    for op in rec.ops:
        moved = op.kind in ("ack", "begin") or (op.kind == "sync" and op.scope == "fs")
        promised.append(promised[-1] + moved)
    seen: set[tuple[str, int]] = set()
    for attempts, sel in enumerate(selections(rec, model, rng)):
        if len(seen) >= limit or attempts > 30 * max(limit, 1):
            return
        state = replay(rec, sel)
        key = (digest(state, content_matters), promised[sel.cut])
        if key not in seen:
            seen.add(key)
            yield sel, state


@dataclass
class State:
    """A replayed crash state: directory entries and file bytes by inode."""

    root: int
    kinds: dict[int, tuple[str, int, str]]  # ino -> (kind, mode, symlink target)
    entries: dict[int, dict[str, int]]
    data: dict[int, bytes | bytearray]


def replay(rec: Recording, sel: Selection) -> State:
    """Apply the selected ops, in their original order, to the initial world."""
    kinds = {ino: (f.kind, f.mode, f.target) for ino, f in rec.initial.items()}
    entries = {ino: dict(f.entries) for ino, f in rec.initial.items() if f.kind == "d"}
    data: dict[int, bytes | bytearray] = {
        ino: f.data for ino, f in rec.initial.items() if f.kind == "f"
    }
    page_map = dict(sel.pages)

    def buf(ino: int) -> bytearray:
        current = data.get(ino, b"")
        if not isinstance(current, bytearray):
            current = data[ino] = bytearray(current)
        return current

    for op in rec.ops[: max(sel.whole | set(page_map), default=-1) + 1]:
        if op.index in page_map:
            b = buf(op.ino)
            for page in sorted(page_map[op.index]):
                lo = max(op.offset, page * PAGE)
                hi = min(op.offset + len(op.data), (page + 1) * PAGE)
                if len(b) < lo:
                    b.extend(bytes(lo - len(b)))
                b[lo:hi] = op.data[lo - op.offset : hi - op.offset]
            continue
        if op.index not in sel.whole:
            continue
        _apply(op, kinds, entries, buf)
    return State(rec.root, kinds, entries, data)


def _apply(
    op: Op,
    kinds: dict[int, tuple[str, int, str]],
    entries: dict[int, dict[str, int]],
    buf: Callable[[int], bytearray],
) -> None:
    if op.kind == "create":
        kinds[op.ino] = (op.node_kind, op.mode, op.target)
        if op.node_kind == "d":
            entries.setdefault(op.ino, {})
        entries.setdefault(op.parent, {})[op.name] = op.ino
    elif op.kind == "link":
        entries.setdefault(op.parent, {})[op.name] = op.ino
    elif op.kind == "unlink":
        d = entries.setdefault(op.parent, {})
        if d.get(op.name) == op.ino:
            del d[op.name]
    elif op.kind == "rename":
        src = entries.setdefault(op.parent, {})
        if src.get(op.name) == op.ino:
            del src[op.name]
        entries.setdefault(op.parent2, {})[op.name2] = op.ino
    elif op.kind == "exchange":
        a, b = entries.setdefault(op.parent, {}), entries.setdefault(op.parent2, {})
        a_ino, b_ino = a.get(op.name), b.get(op.name2)
        for d, name, ino in ((a, op.name, b_ino), (b, op.name2, a_ino)):
            if ino is None:
                d.pop(name, None)
            else:
                d[name] = ino
    elif op.kind == "truncate":
        content = buf(op.ino)
        if op.size < len(content):
            del content[op.size :]
        else:
            content.extend(bytes(op.size - len(content)))


def walk(state: State) -> Iterator[tuple[str, int, str]]:
    """``(relative path, inode, kind)`` of everything reachable from the world's root."""
    stack: list[tuple[str, int]] = [("", state.root)]
    seen_dirs: set[int] = set()
    while stack:
        rel, ino = stack.pop()
        kind = state.kinds.get(ino, ("f", 0o644, ""))[0]
        yield rel, ino, kind
        if kind == "d" and ino not in seen_dirs:
            seen_dirs.add(ino)
            for name, child in sorted(state.entries.get(ino, {}).items(), reverse=True):
                stack.append((f"{rel}/{name}" if rel else name, child))


def file_bytes(state: State) -> dict[str, bytes]:
    """Every regular file of a state, by path relative to the world, with its bytes."""
    return {rel: bytes(state.data.get(ino, b"")) for rel, ino, kind in walk(state) if kind == "f"}


def digest(state: State, content_matters: Callable[[str], bool]) -> str:
    """A fingerprint of a state: names everywhere, bytes where ``content_matters``."""
    h = hashlib.sha256()
    for rel, ino, kind in walk(state):
        h.update(f"{rel}\0{kind}\0".encode("utf-8", "surrogateescape"))
        if kind == "f" and content_matters(rel):
            h.update(hashlib.sha256(state.data.get(ino, b"")).digest())
        elif kind == "l":
            h.update(state.kinds[ino][2].encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def materialise(state: State, dest: Path) -> None:
    """Write a state out as a directory tree at ``dest`` (which must not exist)."""
    first_path: dict[int, Path] = {}
    for rel, ino, kind in walk(state):
        path = dest / rel if rel else dest
        mode = state.kinds.get(ino, ("f", 0o644, ""))[1]
        if kind == "d":
            path.mkdir()
        elif kind == "l":
            os.symlink(state.kinds[ino][2], path)
        elif ino in first_path:
            os.link(first_path[ino], path)
        else:
            first_path[ino] = path
            path.write_bytes(bytes(state.data.get(ino, b"")))
            os.chmod(path, mode)
