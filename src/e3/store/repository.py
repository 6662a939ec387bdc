r"""A repository on disk: where everything lives, and opening/creating/removing one.

Layout (the reference's, so either implementation can operate a repository)::

    <repo>/
      objects/<hh>/<62 hex>.beast2            content-addressed objects
      packages/<name>/<version>               "<package object hash>\n"
      workspaces/<ws>.beast2                  WorkspaceState (empty file: not deployed)
      workspaces/<ws>/data/<seg>/<leaf>.ref   DatasetRef per leaf dataset
      workspaces/<ws>/execution.beast2        latest dataflow state
      workspaces/<ws>.lock, <ws>#dataflow.lock  flock targets (never unlinked)
      executions/<task>/<inputs>/<id>/        status.beast2, output, stdout.txt, stderr.txt
      dataflows/<ws>/<runId>.beast2           dataflow run records

A directory is a repository iff ``objects``, ``packages``, ``executions`` and
``workspaces`` all exist in it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from e3.base.atomic import fsync_dir, make_dirs, storage_error
from e3.errors import RepositoryExists, RepositoryNotFound, StorageError
from e3.store.objects import LocalObjectStore

REQUIRED_DIRS = ("objects", "packages", "executions", "workspaces")


@dataclass
class RepoStore:
    """An open repository. Cheap to construct; holds no file handles."""

    root: Path
    durable: bool = True
    # The directories, joined once: a run builds paths under them thousands of times.
    #: ``packages/``.
    packages_dir: Path = field(init=False, repr=False)
    #: ``workspaces/``.
    workspaces_dir: Path = field(init=False, repr=False)
    #: ``executions/``.
    executions_dir: Path = field(init=False, repr=False)
    #: ``dataflows/``.
    dataflows_dir: Path = field(init=False, repr=False)
    #: Scratch space on the repository's file system (for staging renames).
    tmp_dir: Path = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.objects = LocalObjectStore(self.root / "objects", durable=self.durable)
        self.packages_dir = self.root / "packages"
        self.workspaces_dir = self.root / "workspaces"
        self.executions_dir = self.root / "executions"
        self.dataflows_dir = self.root / "dataflows"
        self.tmp_dir = self.root / "tmp"
        self._executions = str(self.executions_dir)

    # ── paths ────────────────────────────────────────────────────────────
    def package_ref_path(self, name: str, version: str) -> Path:
        """``packages/<name>/<version>`` (``name`` may be ``@scope/name``)."""
        return self.packages_dir.joinpath(*name.split("/"), version)

    def workspace_state_path(self, ws: str) -> Path:
        """``workspaces/<ws>.beast2``."""
        return self.workspaces_dir / f"{ws}.beast2"

    def workspace_dir(self, ws: str) -> Path:
        """``workspaces/<ws>/``."""
        return self.workspaces_dir / ws

    def workspace_lock_path(self, ws: str) -> Path:
        """``workspaces/<ws>.lock`` (structure lock)."""
        return self.workspaces_dir / f"{ws}.lock"

    def dataflow_lock_path(self, ws: str) -> Path:
        """``workspaces/<ws>#dataflow.lock``."""
        return self.workspaces_dir / f"{ws}#dataflow.lock"

    def execution_dir(self, task_hash: str, inputs_hash: str, execution_id: str) -> Path:
        """``executions/<task>/<inputs>/<id>/``."""
        return Path(f"{self._executions}/{task_hash}/{inputs_hash}/{execution_id}")

    def dataflow_run_path(self, ws: str, run_id: str) -> Path:
        """``dataflows/<ws>/<runId>.beast2``."""
        return self.dataflows_dir / ws / f"{run_id}.beast2"


def is_repository(path: Path) -> bool:
    """Whether ``path`` holds the four required directories."""
    return all((path / d).is_dir() for d in REQUIRED_DIRS)


def open_repository(path: str | Path, *, durable: bool = True) -> RepoStore:
    """Open an existing repository.

    Raises:
        RepositoryNotFound: ``path`` is not a repository.
    """
    p = Path(path).expanduser()
    if not is_repository(p):
        raise RepositoryNotFound(
            f"e3 repository not found at {p.resolve()}. Run `e3 repo create {path}` to create one.",
            path=str(p),
        )
    return RepoStore(p.resolve(), durable=durable)


def create_repository(path: str | Path, *, durable: bool = True) -> tuple[RepoStore, list[str]]:
    """Create a repository (and its directory). Returns it and the directories created.

    Raises:
        RepositoryExists: a repository is already there.
    """
    p = Path(path).expanduser().resolve()
    if is_repository(p):
        raise RepositoryExists(f"e3 repository already exists at {p}", path=str(p))
    created: list[str] = []
    try:
        make_dirs(p, durable=durable)
        for d in (*REQUIRED_DIRS, "dataflows"):
            target = p / d
            if not target.is_dir():
                target.mkdir()
                created.append(d)
        if durable and created:  # a repository that was reported created survives a power cut
            fsync_dir(p)
    except OSError as exc:
        raise storage_error(exc, "create repository at", p) from exc
    return RepoStore(p, durable=durable), created


def remove_repository(repo: RepoStore) -> None:
    """Delete a repository directory entirely.

    The directory is first renamed to a hidden sibling, so a crash midway
    leaves no half-deleted repository at the original path.
    """
    root = repo.root
    trash = root.with_name(f".{root.name}.removing.{os.getpid()}")
    try:
        os.rename(root, trash)
    except OSError as exc:
        raise StorageError(f"cannot remove repository {root}: {exc.strerror}") from exc
    shutil.rmtree(trash, ignore_errors=True)
