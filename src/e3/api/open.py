"""``e3.open``: the one way to get a :class:`~e3.model.protocol.Repository`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from e3.base.config import Settings, load_settings

if TYPE_CHECKING:
    from e3.api.engine import Engine
    from e3.model.protocol import Repository


def is_remote(location: str | Path) -> bool:
    """Whether a repository location is an ``http(s)://`` URL."""
    return isinstance(location, str) and location.startswith(("http://", "https://"))


def open(
    location: str | Path,
    *,
    settings: Settings | None = None,
    engine: Engine | None = None,
) -> Repository:
    """Open the repository at a local path or an ``http(s)://host/repos/<name>`` URL.

    Both kinds have the same methods. A local repository runs dataflows in this
    process, on ``engine`` if given (else one of its own, stopped by ``close()``);
    a remote one asks its server. Use it as a context manager to close it.

    Raises:
        RepositoryNotFound: no repository at that path.
        UsageError: a URL that does not name a repository.
    """
    settings = settings or load_settings()
    if is_remote(location):
        from e3.client.remote import open_remote

        return open_remote(str(location), settings)
    from e3.api.local import LocalRepository
    from e3.store.repository import open_repository

    return LocalRepository(open_repository(location, durable=settings.durable), engine=engine)


def warm_up(location: str | Path, ws: str | None = None) -> Callable[[], None]:
    """Start now the processes a local run's first East task will need.

    A warm East worker takes as long to start as this process takes to import
    the engine and prepare a run; started here, before those imports, it is
    ready when the first task is (see :mod:`e3.runners.early`). The run adopts
    it; if nothing does, it is killed at exit, having run nothing. A remote
    location needs nothing here, nor workspace ``ws`` if its last run left it up
    to date and nothing changed since (:mod:`e3.base.settled`: the run will find
    every task cached). Returns what stops the processes if nothing adopted
    them; call it when the run is over (it is also called at exit).
    """
    if is_remote(location):
        return lambda: None
    from e3.base.settled import looks_settled

    if ws is not None and looks_settled(location, ws):
        return lambda: None
    from e3.runners.early import discard, start_early

    start_early()
    return discard


def create(location: str | Path, *, settings: Settings | None = None) -> tuple[str, list[str]]:
    """Create a repository at a path, or on a server; returns where, and what was made.

    Raises:
        RepositoryExists: there is one already.
    """
    settings = settings or load_settings()
    if is_remote(location):
        from e3.client.servers import create_remote

        name = create_remote(str(location), settings)
        return name, []
    from e3.store.repository import create_repository

    store, made = create_repository(location, durable=settings.durable)
    return str(store.root), made


def is_repository(path: str | Path) -> bool:
    """Whether a local directory holds a repository."""
    from e3.store.repository import is_repository as found

    return found(Path(path))
