"""Remote repositories (``http(s)://host/repos/<name>``) behind the CLI's service interface."""

from __future__ import annotations

from e3.config import Settings
from e3.errors import RemoteError
from e3.service import RepositoryService


def open_remote(url: str, settings: Settings) -> RepositoryService:
    """A service talking to the repository at ``url``."""
    del settings
    raise RemoteError(f"remote repositories are not supported yet: {url}")


def create_remote(url: str, settings: Settings) -> str:
    """Create a repository on a server; returns its name."""
    del settings
    raise RemoteError(f"remote repositories are not supported yet: {url}")
