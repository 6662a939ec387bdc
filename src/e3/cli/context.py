"""What every command handler receives: settings, output, and the repository service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from e3.base.config import Settings
from e3.cli.output import Output

if TYPE_CHECKING:
    from e3.model.protocol import Repository


def is_remote(location: str) -> bool:
    """Whether a repository argument is an ``http(s)://`` URL."""
    return location.startswith(("http://", "https://"))


@dataclass
class Context:
    """Per-invocation state shared by command handlers."""

    settings: Settings
    out: Output
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Release what the command opened (HTTP connections to servers)."""
        while self._closers:
            self._closers.pop()()

    def local_path(self, location: str) -> Path:
        """The local repository path a ``<repo>`` argument designates.

        As in the reference, ``E3_REPO`` wins when it names a valid repository.
        """
        from e3.store.repository import is_repository

        override = self.settings.repo_override
        if override and not is_remote(override) and is_repository(Path(override).expanduser()):
            return Path(override).expanduser()
        return Path(location)

    def service(self, location: str) -> Repository:
        """Open the repository named by a ``<repo>`` argument (path or URL)."""
        override = self.settings.repo_override
        if override and is_remote(override):
            location = override
        if is_remote(location):
            from e3.client.service import open_remote

            remote = open_remote(location, self.settings)
            self._closers.append(remote.close)
            return remote
        from e3.api.local import LocalRepository
        from e3.store.repository import open_repository

        return LocalRepository(
            open_repository(self.local_path(location), durable=self.settings.durable)
        )


def require_file(path: Path) -> None:
    """Refuse a missing input file the same way in every command (usage error, exit 2)."""
    from e3.errors import UsageError

    if not path.exists():
        raise UsageError(f"file not found: {path}")
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a file")
