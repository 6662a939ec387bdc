"""Plain results of repository operations, shared by the library, CLI, server and client.

These dataclasses carry no behaviour and import nothing heavy, so the CLI can
render them and the HTTP client can build them without touching storage.
East types inside them are opaque values (see :mod:`e3.codec.types`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

DatasetPath = tuple[str, ...]


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
class ImportResult:
    """What a package import did."""

    name: str
    version: str
    hash: str
    object_count: int
    new_objects: int
    replaced: bool = False


@dataclass(frozen=True)
class ExportResult:
    """What a package or workspace export wrote."""

    name: str
    version: str
    hash: str
    object_count: int
    size: int


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


@dataclass(frozen=True)
class GcResult:
    """Counts of a garbage collection (``dry_run``: what would be deleted)."""

    retained_objects: int
    deleted_objects: int
    skipped_young: int
    deleted_partials: int
    bytes_freed: int
    dry_run: bool


@dataclass(frozen=True)
class RepoStatus:
    """Summary of a repository."""

    location: str
    object_count: int
    packages: list[PackageInfo] = field(default_factory=list)
    workspaces: list[WorkspaceInfo] = field(default_factory=list)
