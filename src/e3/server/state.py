"""What a server keeps between requests, reachable from every handler.

Handlers find it at ``request.app.state.e3`` (:func:`server_of`); it holds the
served repositories (on one shared engine), the asynchronous jobs and the
transfers. Nothing here knows about routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from e3.api.local import LocalRepository
from e3.server.auth import Provider, TokenValidator
from e3.server.jobs import Jobs
from e3.server.limits import Limits
from e3.server.policy import Policy
from e3.server.repos import Repositories
from e3.server.transfers import Transfers

if TYPE_CHECKING:  # uvicorn's, imported by servers that run under it
    from e3.server.connections import ConnectionGuard


@dataclass
class ServerConfig:
    """How a server is set up (command-line options of ``e3-api-server``)."""

    repos: Repositories
    base_url: str
    cors: bool = False
    provider: Provider | None = None
    validator: TokenValidator | None = None
    limits: Limits = field(default_factory=Limits)
    #: Who may do what (:mod:`e3.server.policy`); by default everyone is admin.
    policy: Policy = field(default_factory=Policy.everyone_admin)
    #: The connection guard of the uvicorn server running the app, if any.
    connections: ConnectionGuard | None = None
    #: Where dataflows started over HTTP run their tasks (``e3 serve --cluster``).
    cluster: str | None = None


class ServerState:
    """Shared state of one server."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.repos = config.repos
        self.jobs = Jobs()
        self.transfers = Transfers()

    def repo(self, request: Request) -> LocalRepository:
        """The repository a request's ``{repo}`` names (``RepositoryNotFound`` otherwise)."""
        repo: LocalRepository = self.repos.open(str(request.path_params["repo"]))
        return repo

    def close(self) -> None:
        """Stop runs and jobs; drop spooled transfers."""
        self.repos.close()
        self.jobs.close()
        self.transfers.close()


def server_of(request: Request) -> ServerState:
    """The server state of the app serving ``request``."""
    state: ServerState = request.app.state.e3
    return state
