"""What a recording is made of: inodes of the world directory and the ops that changed them.

An :class:`Op` is one change expressed on inodes rather than paths, in the
order the system calls completed; the crash-state models
(:mod:`fuzz.powercut.crash`) decide which of them a power cut may keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Node:
    """An inode: a file (``data``), a directory (``entries``) or a symlink (``target``)."""

    ino: int
    kind: str  # "f", "d" or "l"
    data: bytearray = field(default_factory=bytearray)
    entries: dict[str, int] = field(default_factory=dict)
    target: str = ""
    mode: int = 0o644
    unknown: bool = False  # some bytes came from outside the world (not comparable)


@dataclass
class Op:
    """One change, in the order the calls completed.

    ``kind``: ``create`` (``parent``/``name`` → new ``ino`` of ``node_kind``),
    ``link``, ``unlink`` (also rmdir), ``rename`` (``parent``/``name`` →
    ``parent2``/``name2``; ``ino2`` is the inode it replaced or -1),
    ``exchange`` (two entries swap), ``truncate`` (``ino`` to ``size``),
    ``write`` (``data`` at ``offset`` of ``ino``), ``sync`` (``scope`` fs, file or
    dir; ``cutoff``: ops completed before it began; ``touched``: the last
    metadata op on its inode by then), ``ack`` / ``begin`` (``payload`` from the
    workload driver).
    """

    index: int
    kind: str
    entry_line: int
    exit_line: int
    parent: int = -1
    name: str = ""
    ino: int = -1
    parent2: int = -1
    name2: str = ""
    ino2: int = -1
    node_kind: str = "f"
    mode: int = 0o644
    target: str = ""
    offset: int = 0
    size: int = 0
    data: bytes = b""
    scope: str = ""
    cutoff: int = 0
    touched: int = -1
    payload: dict[str, Any] | None = None
    promises: frozenset[str] = frozenset()
    path: str = ""

    @property
    def is_metadata(self) -> bool:
        """Namespace and size changes: what ext4 journals, in order."""
        return self.kind in ("create", "link", "unlink", "rename", "exchange", "truncate")

    def touches(self) -> tuple[int, ...]:
        """Inodes whose metadata this op changes (directories and the files moved)."""
        if self.kind in ("create", "link", "unlink"):
            return (self.parent, self.ino)
        if self.kind in ("rename", "exchange"):
            return (self.parent, self.parent2, self.ino, self.ino2)
        if self.kind == "truncate":
            return (self.ino,)
        return ()


@dataclass(frozen=True)
class Frozen:
    """An inode of the initial state (read-only: every crash state starts from it)."""

    kind: str
    data: bytes
    entries: tuple[tuple[str, int], ...]
    target: str
    mode: int


def freeze(node: Node) -> Frozen:
    """A read-only copy of ``node``."""
    return Frozen(
        node.kind, bytes(node.data), tuple(sorted(node.entries.items())), node.target, node.mode
    )
