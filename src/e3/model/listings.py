"""What listings of a repository show: its packages, workspaces and datasets.

Apart from :mod:`e3.model.results` because the storage core builds these on
every command (``e3 get`` and ``e3 start`` read a workspace through them), and
defining a frozen dataclass costs about a millisecond at import: the core loads
these three, not the sixteen results of every operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from e3.base.paths import DatasetPath


@dataclass(frozen=True)
class PackageInfo:
    """A package known to a repository."""

    name: str
    version: str
    hash: str

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class WorkspaceInfo:
    """A workspace and what is deployed in it."""

    name: str
    deployed: bool
    package_name: str | None = None
    package_version: str | None = None
    package_hash: str | None = None
    deployed_at: datetime | None = None
    current_run_id: str | None = None


@dataclass(frozen=True)
class DatasetEntry:
    """A node of a workspace's dataset tree, with its current state for datasets.

    ``status`` is ``set``, ``unset`` or ``null`` for datasets and ``tree`` for
    inner nodes. ``type`` is the declared East type (``None`` for trees).
    """

    path: DatasetPath
    kind: Literal["dataset", "tree"]
    type: Any = None
    writable: bool = False
    status: Literal["set", "unset", "null", "tree", "unknown"] = "unknown"
    hash: str | None = None
    size: int | None = None
