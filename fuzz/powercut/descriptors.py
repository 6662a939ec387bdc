"""Descriptor, process and data calls of a recording (a mixin of :class:`Recorder`).

A write lands where its descriptor's open file description points: which
inode, and at which offset. So each process gets a descriptor table: ``open``
fills it, ``dup`` and ``fcntl(F_DUPFD)`` share an entry, ``lseek`` moves the
shared offset, ``fork`` copies the table (entries still shared, as in the
kernel), a thread (``CLONE_FILES``) shares the whole table and ``execve``
drops close-on-exec entries. ``sendfile`` and ``copy_file_range`` copy bytes
the model already knows when their source is in the world.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, NamedTuple

from fuzz.powercut.ops import Node, Op
from fuzz.powercut.strace import (
    Entered,
    Syscall,
    TraceError,
    annotation,
    fd_arg,
    flag_set,
    int_arg,
    iovec_data,
    string_arg,
)

CLONES = {"clone", "clone3", "fork", "vfork"}


@dataclass
class OpenFile:
    """An open file description: the inode (None outside the world) and its offset."""

    ino: int | None
    offset: int = 0
    append: bool = False


class Slot(NamedTuple):
    """A descriptor: its open file description, close-on-exec, and the trace line that made it."""

    of: OpenFile
    cloexec: bool
    line: int


class Table:
    """A descriptor table: fd → :class:`Slot`."""

    def __init__(self, fds: dict[int, Slot] | None = None) -> None:
        self.fds: dict[int, Slot] = fds or {}

    def copy(self) -> Table:
        """A forked child's table: the same descriptions under the same numbers."""
        return Table(dict(self.fds))


class DescriptorCalls:
    """Handlers ``_on_<syscall>`` for descriptors, processes and file data."""

    nodes: dict[int, Node]
    tables: dict[int, Table]
    cwd: dict[int, str]
    ack_path: str
    _entered: dict[int, Entered]
    _orphans: dict[int, list[Syscall | Entered]]

    # Provided by the Recorder.
    def rel(self, path: str) -> str | None:
        raise NotImplementedError

    def lookup(self, rel: str) -> int | None:
        raise NotImplementedError

    def _parent_of(self, rel: str, line: int) -> tuple[int, str]:
        raise NotImplementedError

    def _abs(self, tid: int, dirfd_token: str | None, path: str) -> str:
        raise NotImplementedError

    def _op(self, event: Syscall, kind: str, **fields: Any) -> Op:
        raise NotImplementedError

    def _new_node(self, kind: str, mode: int, target: str = "") -> Node:
        raise NotImplementedError

    def _ack(self, ev: Syscall, line: bytes) -> None:
        raise NotImplementedError

    def feed(self, event: Syscall | Entered) -> None:
        raise NotImplementedError

    # ── tables ──────────────────────────────────────────────────────────
    def _table(self, tid: int) -> Table:
        return self.tables.setdefault(tid, Table())

    def _orphan(self, event: Syscall | Entered) -> bool:
        """Hold back the calls of a thread whose parent's clone has not returned yet.

        A child often prints before its parent's ``clone`` returns, and while
        two clones are in flight (a thread being created while another thread
        vforks) nothing says which one it came from, nor so whether it shares
        its parent's descriptor table. Its calls wait until a clone names it.
        Until then the parent of a vfork is suspended, and another process's
        child only touches its own descriptors, so the delay changes no file.
        """
        if event.tid in self.tables:
            return False
        if not any(e.name in CLONES and e.tid != event.tid for e in self._entered.values()):
            return False
        self._orphans.setdefault(event.tid, []).append(event)
        return True

    def _on_clone(self, ev: Syscall, table: Table) -> None:
        child = ev.value
        if child <= 0:
            return
        if child not in self.tables:
            share = any("CLONE_FILES" in a for a in ev.args)
            self.tables[child] = table if share else table.copy()
        self.cwd.setdefault(child, self.cwd.get(ev.tid, ""))
        for held in self._orphans.pop(child, []):
            self.feed(held)

    _on_clone3 = _on_clone
    _on_fork = _on_clone
    _on_vfork = _on_clone

    def _on_execve(self, ev: Syscall, table: Table) -> None:
        self.tables[ev.tid] = Table({fd: e for fd, e in table.fds.items() if not e.cloexec})

    def _on_chdir(self, ev: Syscall, table: Table) -> None:
        path = self._abs(ev.tid, None, string_arg(ev.args[0]).decode("utf-8", "surrogateescape"))
        self.cwd[ev.tid] = os.path.normpath(path)

    def _on_fchdir(self, ev: Syscall, table: Table) -> None:
        self.cwd[ev.tid] = annotation(ev.args[0]) or self.cwd.get(ev.tid, "")

    # ── opening and closing ─────────────────────────────────────────────
    def _on_open(self, ev: Syscall, table: Table) -> None:
        self._opened(ev, table, ev.args[1], ev.args[2] if len(ev.args) > 2 else "0")

    def _on_openat(self, ev: Syscall, table: Table) -> None:
        self._opened(ev, table, ev.args[2], ev.args[3] if len(ev.args) > 3 else "0")

    def _on_creat(self, ev: Syscall, table: Table) -> None:
        self._opened(ev, table, "O_WRONLY|O_CREAT|O_TRUNC", ev.args[1])

    def _on_openat2(self, ev: Syscall, table: Table) -> None:
        raise TraceError("openat2 is not modelled")

    def _opened(self, ev: Syscall, table: Table, flags_token: str, mode_token: str) -> None:
        fd, path = ev.value, ev.result_path
        flags = flag_set(flags_token)
        rel = self.rel(path) if path else None
        if rel is None:
            table.fds[fd] = Slot(OpenFile(None), "O_CLOEXEC" in flags, ev.exit_line)
            return
        if "O_TMPFILE" in flags:
            raise TraceError("O_TMPFILE in the world is not modelled")
        ino = self.lookup(rel)
        if ino is None:
            if "O_CREAT" not in flags:
                raise TraceError(f"trace line {ev.exit_line}: opened {rel!r}, not in the model")
            parent, name = self._parent_of(rel, ev.exit_line)
            mode = (int(mode_token, 8) if mode_token.isdigit() else 0o644) & 0o7777 & ~0o022
            node = self._new_node("f", mode)
            self.nodes[parent].entries[name] = node.ino
            self._op(ev, "create", parent=parent, name=name, ino=node.ino, mode=mode, path=rel)
            ino = node.ino
        elif "O_TRUNC" in flags and self.nodes[ino].kind == "f" and "O_RDONLY" not in flags:
            self.nodes[ino].data.clear()
            self._op(ev, "truncate", ino=ino, size=0, path=rel)
        table.fds[fd] = Slot(
            OpenFile(ino, 0, "O_APPEND" in flags), "O_CLOEXEC" in flags, ev.exit_line
        )

    def _closes(self, table: Table, fd: int, ev: Syscall) -> bool:
        """Whether a close (printed at ``ev``) closed the descriptor ``fd`` holds now.

        Its number is free from the moment the close begins: another thread's
        open that completed after that moment got the number anew, even if the
        close's own exit is printed later. Only an older descriptor was closed.
        """
        slot = table.fds.get(fd)
        return slot is not None and slot.line < ev.entry_line

    def _on_close(self, ev: Syscall, table: Table) -> None:
        fd = fd_arg(ev.args[0])
        if self._closes(table, fd, ev):
            del table.fds[fd]

    def _on_close_range(self, ev: Syscall, table: Table) -> None:
        low, high = int_arg(ev.args[0]), int_arg(ev.args[1])
        cloexec = "CLOSE_RANGE_CLOEXEC" in ev.args[2]
        for fd in [fd for fd in table.fds if low <= fd <= high and self._closes(table, fd, ev)]:
            if cloexec:
                table.fds[fd] = table.fds[fd]._replace(cloexec=True)
            else:
                del table.fds[fd]

    def _dup(self, ev: Syscall, table: Table, cloexec: bool) -> None:
        entry = table.fds.get(fd_arg(ev.args[0]))
        if entry is None:
            table.fds.pop(ev.value, None)
            if self.rel(annotation(ev.args[0]) or "/") is not None:
                raise TraceError(f"trace line {ev.exit_line}: dup of an untracked world file")
            return
        table.fds[ev.value] = Slot(entry.of, cloexec, ev.exit_line)

    def _on_dup(self, ev: Syscall, table: Table) -> None:
        self._dup(ev, table, False)

    def _on_dup2(self, ev: Syscall, table: Table) -> None:
        self._dup(ev, table, False)

    def _on_dup3(self, ev: Syscall, table: Table) -> None:
        self._dup(ev, table, "O_CLOEXEC" in ev.args[2])

    def _on_fcntl(self, ev: Syscall, table: Table) -> None:
        cmd = ev.args[1]
        if cmd in ("F_DUPFD", "F_DUPFD_CLOEXEC"):
            self._dup(ev, table, cmd == "F_DUPFD_CLOEXEC")
        elif cmd == "F_SETFD":
            fd = fd_arg(ev.args[0])
            if fd in table.fds:
                table.fds[fd] = table.fds[fd]._replace(cloexec="FD_CLOEXEC" in ev.args[2])

    def _on_lseek(self, ev: Syscall, table: Table) -> None:
        entry = table.fds.get(fd_arg(ev.args[0]))
        if entry is not None:
            entry.of.offset = ev.value

    # ── data ────────────────────────────────────────────────────────────
    def _world_fd(self, table: Table, token: str, line: int) -> OpenFile | None:
        entry = table.fds.get(fd_arg(token))
        if entry is None:
            path = annotation(token)
            if path is not None and self.rel(path.removesuffix(" (deleted)")) is not None:
                raise TraceError(f"trace line {line}: write through an untracked world descriptor")
            return None
        return entry.of if entry.of.ino is not None else None

    def _write(self, ev: Syscall, of: OpenFile, data: bytes, offset: int | None) -> None:
        assert of.ino is not None
        node = self.nodes[of.ino]
        at = offset if offset is not None else (len(node.data) if of.append else of.offset)
        if at > len(node.data):
            node.data.extend(bytes(at - len(node.data)))
        node.data[at : at + len(data)] = data
        if offset is None:
            of.offset = at + len(data)
        if data:
            self._op(ev, "write", ino=of.ino, offset=at, data=data)

    def _on_write(self, ev: Syscall, table: Table) -> None:
        path = annotation(ev.args[0])
        if path is not None and path == self.ack_path:
            self._ack(ev, string_arg(ev.args[1])[: ev.value])
            return
        of = self._world_fd(table, ev.args[0], ev.exit_line)
        if of is not None:
            self._write(ev, of, string_arg(ev.args[1])[: ev.value], None)

    def _on_pwrite64(self, ev: Syscall, table: Table) -> None:
        of = self._world_fd(table, ev.args[0], ev.exit_line)
        if of is not None:
            self._write(ev, of, string_arg(ev.args[1])[: ev.value], int_arg(ev.args[3]))

    def _on_writev(self, ev: Syscall, table: Table) -> None:
        of = self._world_fd(table, ev.args[0], ev.exit_line)
        if of is not None:
            self._write(ev, of, iovec_data(ev.args[1])[: ev.value], None)

    def _on_pwritev(self, ev: Syscall, table: Table) -> None:
        of = self._world_fd(table, ev.args[0], ev.exit_line)
        if of is not None:
            self._write(ev, of, iovec_data(ev.args[1])[: ev.value], int_arg(ev.args[3]))

    _on_pwritev2 = _on_pwritev

    def _copied(
        self, ev: Syscall, table: Table, src: str, src_off: str, dst: str, dst_off: str
    ) -> None:
        """Bytes copied in the kernel: known when the source is a file of the world."""
        n = ev.value
        entry = table.fds.get(fd_arg(src))
        source = entry.of if entry else None
        start = int_arg(src_off) if src_off != "NULL" else (source.offset if source else 0)
        if source is not None and src_off == "NULL":
            source.offset += n
        out = self._world_fd(table, dst, ev.exit_line)
        if out is None:
            return
        data = None
        if source is not None and source.ino is not None:
            data = bytes(self.nodes[source.ino].data[start : start + n])
        if data is None or len(data) != n:
            data = bytes(n)
            self.nodes[out.ino].unknown = True  # type: ignore[index]
        self._write(ev, out, data, int_arg(dst_off) if dst_off != "NULL" else None)

    def _on_sendfile(self, ev: Syscall, table: Table) -> None:
        self._copied(ev, table, ev.args[1], ev.args[2], ev.args[0], "NULL")

    def _on_copy_file_range(self, ev: Syscall, table: Table) -> None:
        self._copied(ev, table, ev.args[0], ev.args[1], ev.args[2], ev.args[3])

    def _truncate(self, ev: Syscall, ino: int, size: int) -> None:
        node = self.nodes[ino]
        if size < len(node.data):
            del node.data[size:]
        else:
            node.data.extend(bytes(size - len(node.data)))
        self._op(ev, "truncate", ino=ino, size=size)

    def _on_ftruncate(self, ev: Syscall, table: Table) -> None:
        of = self._world_fd(table, ev.args[0], ev.exit_line)
        if of is not None and of.ino is not None:
            self._truncate(ev, of.ino, int_arg(ev.args[1]))

    def _on_truncate(self, ev: Syscall, table: Table) -> None:
        path = self._abs(ev.tid, None, string_arg(ev.args[0]).decode("utf-8", "surrogateescape"))
        rel = self.rel(path)
        ino = self.lookup(rel) if rel is not None else None
        if ino is not None:
            self._truncate(ev, ino, int_arg(ev.args[1]))

    def _on_fallocate(self, ev: Syscall, table: Table) -> None:
        of = self._world_fd(table, ev.args[0], ev.exit_line)
        if of is not None and of.ino is not None and ev.args[1].strip() == "0":
            end = int_arg(ev.args[2]) + int_arg(ev.args[3])
            if end > len(self.nodes[of.ino].data):
                self._truncate(ev, of.ino, end)
