"""Turning a system-call recording into ops on the inodes of a world directory.

:class:`Recorder` replays the traced calls on an in-memory copy of the world
directory (the *volatile* state: what the processes saw) and emits one
:class:`~fuzz.powercut.ops.Op` per change, expressed on inodes rather than
paths: a new directory entry, a rename, bytes written at an offset, a sync.
Paths are resolved when the call happens; descriptors are followed through
per-process tables (:mod:`fuzz.powercut.descriptors`), so a write lands in the
file its descriptor was opened on even after that file was renamed.

Only the world directory is modelled; calls on anything outside it are
ignored, except that moving a file into the world from outside is refused
(its bytes would be unknown). :meth:`Recorder.check_final` then compares the
volatile state with the real directory: a difference means the recording
missed something, and the explorer stops rather than reason on a wrong model.

A sync's durability is decided by what had *completed* when it *began*
(``cutoff``): a write racing with an ``fsync`` on another thread is not
covered by it. At every file-system-wide sync the workload's promise function
reads the volatile state (for example, which executions have a result): those
facts must survive any crash after the sync returned.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fuzz.powercut.descriptors import DescriptorCalls, Table
from fuzz.powercut.ops import Frozen, Node, Op, freeze
from fuzz.powercut.strace import (
    Entered,
    Syscall,
    TraceError,
    annotation,
    fd_arg,
    parse_trace,
    string_arg,
)

AT_FDCWD = -100
_SYNCS = {"fsync", "fdatasync", "syncfs", "sync"}

#: Facts a workload reads from the volatile state at a sync ("execution T/I has a result").
PromiseFn = Callable[["Recorder"], frozenset[str]]


class Recorder(DescriptorCalls):
    """The volatile state of the world and the ops that changed it."""

    def __init__(self, world: Path, ack_path: Path, promises: PromiseFn | None = None) -> None:
        self.world = str(world.resolve())
        self.ack_path = str(ack_path.resolve())
        self.promise_fn = promises
        self.nodes: dict[int, Node] = {}
        self.root = self._snapshot(Path(self.world))
        self.initial: dict[int, Frozen] = {ino: freeze(n) for ino, n in self.nodes.items()}
        self.initial_promises = promises(self) if promises else frozenset()
        self.ops: list[Op] = []
        self.tables: dict[int, Table] = {}
        self.cwd: dict[int, str] = {}
        self.last_touch: dict[int, int] = {}
        self._entered: dict[int, Entered] = {}
        self._orphans: dict[int, list[Syscall | Entered]] = {}
        self._sync_start: dict[int, tuple[int, int, int, frozenset[str]]] = {}
        self._next_ino = max(self.nodes) + 1

    def _snapshot(self, root: Path) -> int:
        """Load the world as it is before the traced run (hard links stay shared)."""
        by_real: dict[tuple[int, int], int] = {}

        def node_of(path: Path) -> int:
            st = os.lstat(path)
            key = (st.st_dev, st.st_ino)
            if key in by_real:
                return by_real[key]
            ino = by_real[key] = len(self.nodes) + 1
            mode = st.st_mode & 0o7777
            if path.is_symlink():
                self.nodes[ino] = Node(ino, "l", target=os.readlink(path), mode=mode)
            elif path.is_dir():
                node = self.nodes[ino] = Node(ino, "d", mode=mode)
                for name in sorted(os.listdir(path)):
                    node.entries[name] = node_of(path / name)
            else:
                self.nodes[ino] = Node(ino, "f", bytearray(path.read_bytes()), mode=mode)
            return ino

        return node_of(root)

    # ── paths in the volatile state ─────────────────────────────────────
    def rel(self, path: str) -> str | None:
        """``path`` relative to the world (``""`` for the world itself), or None if outside."""
        path = posixpath.normpath(path)
        if path == self.world:
            return ""
        if path.startswith(self.world + "/"):
            return path[len(self.world) + 1 :]
        return None

    def lookup(self, rel: str) -> int | None:
        """Inode at a world-relative path, or None."""
        ino = self.root
        for part in [p for p in rel.split("/") if p]:
            node = self.nodes[ino]
            if node.kind != "d" or part not in node.entries:
                return None
            ino = node.entries[part]
        return ino

    def _parent_of(self, rel: str, line: int) -> tuple[int, str]:
        head, name = posixpath.split(rel)
        parent = self.lookup(head)
        if parent is None or self.nodes[parent].kind != "d" or not name:
            raise TraceError(f"trace line {line}: no directory for {rel!r} in the model")
        return parent, name

    def read(self, rel: str) -> bytes | None:
        """Content of a file of the volatile state (for promise functions)."""
        ino = self.lookup(rel)
        if ino is None or self.nodes[ino].kind != "f":
            return None
        return bytes(self.nodes[ino].data)

    def listdir(self, rel: str) -> list[str]:
        """Names in a directory of the volatile state ([] if absent)."""
        ino = self.lookup(rel)
        if ino is None or self.nodes[ino].kind != "d":
            return []
        return sorted(self.nodes[ino].entries)

    def _abs(self, tid: int, dirfd_token: str | None, path: str) -> str:
        if path.startswith("/"):
            return path
        base = annotation(dirfd_token) if dirfd_token else None
        if base is None and (dirfd_token is None or fd_arg(dirfd_token) == AT_FDCWD):
            base = self.cwd.get(tid) or None
        if base is None:
            raise TraceError(f"relative path {path!r} of thread {tid} against an unknown base")
        return posixpath.join(base, path)

    def _path_arg(self, ev: Syscall, dirfd: int | None, path: int) -> str | None:
        """World-relative path of a (dirfd, path) argument pair; None if outside."""
        raw = string_arg(ev.args[path]).decode("utf-8", "surrogateescape")
        return self.rel(self._abs(ev.tid, ev.args[dirfd] if dirfd is not None else None, raw))

    # ── feeding ─────────────────────────────────────────────────────────
    def feed(self, event: Syscall | Entered) -> None:
        """Apply one traced event (in the order :func:`parse_trace` gives them)."""
        if self._orphan(event):
            return
        if isinstance(event, Entered):
            self._entered[event.tid] = event
            if event.name in _SYNCS:
                self._sync_began(event.tid, event.name, event.args)
            return
        self._entered.pop(event.tid, None)
        table = self._table(event.tid)
        if event.args and event.args[0].startswith("AT_FDCWD<"):
            self.cwd[event.tid] = annotation(event.args[0]) or self.cwd.get(event.tid, "")
        if event.failed:
            self._sync_start.pop(event.tid, None)
            return
        handler = getattr(self, f"_on_{event.name}", None)
        if handler is not None:
            handler(event, table)

    def _op(self, event: Syscall, kind: str, **fields: Any) -> Op:
        op = Op(len(self.ops), kind, event.entry_line, event.exit_line, **fields)
        self.ops.append(op)
        if op.is_metadata:
            for ino in op.touches():
                if ino >= 0:
                    self.last_touch[ino] = op.index
        return op

    def _new_node(self, kind: str, mode: int, target: str = "") -> Node:
        node = Node(self._next_ino, kind, mode=mode, target=target)
        self.nodes[node.ino] = node
        self._next_ino += 1
        return node

    def _ack(self, ev: Syscall, line: bytes) -> None:
        kind, _, body = line.decode().strip().partition(" ")
        if kind not in ("ack", "begin"):
            raise TraceError(f"unknown marker {line[:80]!r}")
        self._op(ev, kind, payload=json.loads(body))

    # ── names ───────────────────────────────────────────────────────────
    def _create(self, ev: Syscall, rel: str, kind: str, mode: int, target: str = "") -> None:
        parent, name = self._parent_of(rel, ev.exit_line)
        node = self._new_node(kind, mode, target)
        self.nodes[parent].entries[name] = node.ino
        self._op(
            ev,
            "create",
            parent=parent,
            name=name,
            ino=node.ino,
            node_kind=kind,
            mode=mode,
            target=target,
            path=rel,
        )

    def _on_mkdir(self, ev: Syscall, table: Table) -> None:
        rel = self._path_arg(ev, None, 0)
        if rel is not None:
            self._create(ev, rel, "d", 0o755)

    def _on_mkdirat(self, ev: Syscall, table: Table) -> None:
        rel = self._path_arg(ev, 0, 1)
        if rel is not None:
            self._create(ev, rel, "d", 0o755)

    def _on_symlink(self, ev: Syscall, table: Table) -> None:
        rel = self._path_arg(ev, None, 1)
        if rel is not None:
            self._create(ev, rel, "l", 0o777, string_arg(ev.args[0]).decode("utf-8", "replace"))

    def _on_symlinkat(self, ev: Syscall, table: Table) -> None:
        rel = self._path_arg(ev, 1, 2)
        if rel is not None:
            self._create(ev, rel, "l", 0o777, string_arg(ev.args[0]).decode("utf-8", "replace"))

    def _remove(self, ev: Syscall, rel: str | None) -> None:
        if rel is None:
            return
        parent, name = self._parent_of(rel, ev.exit_line)
        ino = self.nodes[parent].entries.pop(name, None)
        if ino is None:
            raise TraceError(f"trace line {ev.exit_line}: removed {rel!r}, not in the model")
        self._op(ev, "unlink", parent=parent, name=name, ino=ino, path=rel)

    def _on_unlink(self, ev: Syscall, table: Table) -> None:
        self._remove(ev, self._path_arg(ev, None, 0))

    def _on_rmdir(self, ev: Syscall, table: Table) -> None:
        self._remove(ev, self._path_arg(ev, None, 0))

    def _on_unlinkat(self, ev: Syscall, table: Table) -> None:
        self._remove(ev, self._path_arg(ev, 0, 1))

    def _link(self, ev: Syscall, src: str | None, dst: str | None) -> None:
        if dst is None:
            return
        if src is None:
            raise TraceError(f"trace line {ev.exit_line}: hard link into the world from outside")
        ino = self.lookup(src)
        parent, name = self._parent_of(dst, ev.exit_line)
        if ino is None:
            raise TraceError(f"trace line {ev.exit_line}: linked {src!r}, not in the model")
        self.nodes[parent].entries[name] = ino
        self._op(ev, "link", parent=parent, name=name, ino=ino, path=dst)

    def _on_link(self, ev: Syscall, table: Table) -> None:
        self._link(ev, self._path_arg(ev, None, 0), self._path_arg(ev, None, 1))

    def _on_linkat(self, ev: Syscall, table: Table) -> None:
        self._link(ev, self._path_arg(ev, 0, 1), self._path_arg(ev, 2, 3))

    def _rename(self, ev: Syscall, src: str | None, dst: str | None, flags: str = "") -> None:
        if dst is None:
            self._remove(ev, src)  # moved out of the world: gone, as far as it is concerned
            return
        if src is None:
            raise TraceError(f"trace line {ev.exit_line}: file moved into the world from outside")
        sp, sn = self._parent_of(src, ev.exit_line)
        dp, dn = self._parent_of(dst, ev.exit_line)
        ino = self.nodes[sp].entries.get(sn)
        if ino is None:
            raise TraceError(f"trace line {ev.exit_line}: renamed {src!r}, not in the model")
        other = self.nodes[dp].entries.get(dn, -1)
        if "RENAME_EXCHANGE" in flags:
            self.nodes[sp].entries[sn], self.nodes[dp].entries[dn] = other, ino
            self._op(
                ev,
                "exchange",
                parent=sp,
                name=sn,
                ino=ino,
                parent2=dp,
                name2=dn,
                ino2=other,
                path=dst,
            )
            return
        if other == ino:
            return  # two names of one inode: rename does nothing
        del self.nodes[sp].entries[sn]
        self.nodes[dp].entries[dn] = ino
        self._op(
            ev, "rename", parent=sp, name=sn, ino=ino, parent2=dp, name2=dn, ino2=other, path=dst
        )

    def _on_rename(self, ev: Syscall, table: Table) -> None:
        self._rename(ev, self._path_arg(ev, None, 0), self._path_arg(ev, None, 1))

    def _on_renameat(self, ev: Syscall, table: Table) -> None:
        self._rename(ev, self._path_arg(ev, 0, 1), self._path_arg(ev, 2, 3))

    def _on_renameat2(self, ev: Syscall, table: Table) -> None:
        self._rename(ev, self._path_arg(ev, 0, 1), self._path_arg(ev, 2, 3), ev.args[4])

    # ── syncs ───────────────────────────────────────────────────────────
    def _sync_began(self, tid: int, name: str, args: list[str]) -> None:
        ino = -1
        if name != "sync":
            entry = self._table(tid).fds.get(fd_arg(args[0])) if args else None
            if entry is None or entry.of.ino is None:
                return  # a descriptor outside the world
            ino = entry.of.ino
        fs_wide = name in ("syncfs", "sync")
        promises = self.promise_fn(self) if fs_wide and self.promise_fn else frozenset()
        self._sync_start[tid] = (len(self.ops), ino, self.last_touch.get(ino, -1), promises)

    def _sync(self, ev: Syscall, table: Table) -> None:
        if ev.entry_line == ev.exit_line:
            self._sync_began(ev.tid, ev.name, list(ev.args))
        start = self._sync_start.pop(ev.tid, None)
        if start is None:
            return
        cutoff, ino, touched, promises = start
        if ev.name in ("syncfs", "sync"):
            self._op(ev, "sync", scope="fs", cutoff=cutoff, promises=promises)
            return
        scope = "dir" if self.nodes[ino].kind == "d" else "file"
        if ev.name == "fdatasync":
            scope = "data"
        self._op(ev, "sync", scope=scope, ino=ino, cutoff=cutoff, touched=touched)

    _on_fsync = _sync
    _on_fdatasync = _sync
    _on_syncfs = _sync
    _on_sync = _sync

    # ── the end ─────────────────────────────────────────────────────────
    def load(self, trace_file: Path) -> None:
        """Feed a finished trace, then check the model against the disk."""
        for event in parse_trace(trace_file):
            self.feed(event)
        if self._orphans:
            raise TraceError(f"threads {sorted(self._orphans)} never named by a clone")
        self.check_final()

    def check_final(self) -> None:
        """Compare the volatile state with the real world directory (raise on a difference)."""

        def walk(path: Path, ino: int, rel: str) -> None:
            node = self.nodes[ino]
            if path.is_symlink() or node.kind == "l":
                if not path.is_symlink() or node.kind != "l":
                    raise TraceError(f"model and disk differ at {rel!r} (symlink)")
                return
            if path.is_dir():
                if node.kind != "d":
                    raise TraceError(f"model and disk differ at {rel!r}: a directory on disk")
                names = sorted(os.listdir(path))
                if names != sorted(node.entries):
                    extra = sorted(set(names) ^ set(node.entries))[:5]
                    raise TraceError(f"model and disk differ in {rel or '.'!r}: {extra}")
                for name in names:
                    walk(path / name, node.entries[name], posixpath.join(rel, name))
                return
            if node.kind != "f":
                raise TraceError(f"model and disk differ at {rel!r}: a file on disk")
            if not node.unknown and path.read_bytes() != bytes(node.data):
                raise TraceError(f"model and disk differ in the bytes of {rel!r}")

        walk(Path(self.world), self.root, "")
