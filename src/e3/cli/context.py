"""What every command handler receives: settings, output, and repositories to work on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from e3.base.config import Settings
from e3.cli.output import Output

if TYPE_CHECKING:
    from e3.model.protocol import Repository


@dataclass
class Context:
    """Per-invocation state shared by command handlers."""

    settings: Settings
    out: Output
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close the repositories the command opened (stops their runs and connections)."""
        while self._closers:
            self._closers.pop()()

    def on_close(self, action: Callable[[], None]) -> None:
        """Run ``action`` when the command ends (after the repositories opened since close)."""
        self._closers.append(action)

    def repository(self, location: str) -> Repository:
        """Open the repository a ``<repo>`` argument names (a path or a server URL).

        The argument always wins: ``E3_REPO`` only fills in a ``<repo>`` that was
        left out (see :func:`e3.cli.fill_repo_argument`).
        """
        from e3.api.open import open as open_repository

        repo = open_repository(location, settings=self.settings)
        self._closers.append(repo.close)
        return repo


def require_file(path: Path) -> None:
    """Refuse a missing input file the same way in every command (usage error, exit 2)."""
    from e3.errors import UsageError

    if not path.exists():
        raise UsageError(f"file not found: {path}")
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a file")
