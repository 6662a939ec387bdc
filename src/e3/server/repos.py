"""The repositories a server serves, opened through the porcelain.

Every repository directory under a root (multi-repository mode, where clients
may create and delete them), or one repository named ``default``. Each is
opened as a :class:`~e3.api.local.LocalRepository` on the server's one engine,
so every run on every repository shares the warm workers.
"""

from __future__ import annotations

import re
from pathlib import Path

from e3.api.engine import Engine
from e3.api.local import LocalRepository
from e3.api.open import create, is_repository
from e3.api.open import open as open_repository
from e3.base.config import Settings
from e3.errors import InvalidName, RepositoryExists, RepositoryNotFound, UsageError

_REPO_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
#: Name of the repository a single-repository server serves.
DEFAULT_REPO = "default"


class Repositories:
    """The repositories a server serves.

    Every repository directory under ``root`` (multi-repository mode), or one
    repository named ``default``.
    """

    def __init__(
        self, *, root: Path | None = None, single: Path | None = None, durable: bool = True
    ) -> None:
        if (root is None) == (single is None):
            raise UsageError("serve either --repos DIR or --repo PATH")
        self.root = root
        self.single = single
        self.settings = Settings(durable=durable)
        self.engine = Engine()
        self.engine = Engine()

    @property
    def multi(self) -> bool:
        """Whether repositories can be created and deleted over the API."""
        return self.root is not None

    def names(self) -> list[str]:
        """Names of the repositories served."""
        if self.single is not None:
            return [DEFAULT_REPO]
        assert self.root is not None
        return sorted(
            p.name for p in self.root.iterdir() if _REPO_NAME.fullmatch(p.name) and is_repository(p)
        )

    def path(self, name: str) -> Path:
        """Directory of a repository name (validated: no escaping the root)."""
        if self.single is not None:
            if name != DEFAULT_REPO:
                raise RepositoryNotFound(f"repository '{name}' not found", repo=name)
            return self.single
        if not _REPO_NAME.fullmatch(name) or name in (".", ".."):
            raise InvalidName(f"invalid repository name {name!r}")
        assert self.root is not None
        return self.root / name

    def open(self, name: str) -> LocalRepository:
        """Open a served repository (on the server's engine)."""
        path = self.path(name)
        if not is_repository(path):
            raise RepositoryNotFound(f"repository '{name}' not found", repo=name)
        repo = open_repository(path, settings=self.settings, engine=self.engine)
        assert isinstance(repo, LocalRepository)
        return repo

    def create(self, name: str) -> None:
        """Create a repository (multi-repository mode)."""
        path = self.path(name)
        if is_repository(path):
            raise RepositoryExists(f"repository '{name}' already exists", repo=name)
        create(path, settings=self.settings)

    def close(self) -> None:
        """Cancel the runs still going and stop the engine's workers."""
        self.engine.close()
