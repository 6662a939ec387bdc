"""Repositories to run the porcelain conformance suite against.

The same tests run on a local path, on a server inside this process (its ASGI
application behind an in-process transport: fast), and on a real server
process on 127.0.0.1.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import e3
from e3.base.config import Settings
from e3.model.protocol import Repository
from e3.server.app import ServerConfig, create_app
from e3.server.repos import Repositories
from tests_support import ASGISyncTransport, Served


@pytest.fixture(scope="session")
def inproc_app(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ASGISyncTransport, Path]]:
    """The API application, in this process, serving a directory of repositories."""
    root = tmp_path_factory.mktemp("inproc") / "repos"
    root.mkdir()
    app = create_app(ServerConfig(Repositories(root=root, durable=False), "http://testserver"))
    transport = ASGISyncTransport(app)
    try:
        yield transport, root
    finally:
        app.state.e3.close()
        transport.shutdown()


@pytest.fixture(params=["local", "inproc", "server"])
def repo(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    inproc_app: tuple[ASGISyncTransport, Path],
) -> Iterator[Repository]:
    """An empty repository, opened with ``e3.open`` on a path or a URL."""
    settings = Settings(home=tmp_path / "home", durable=False)
    if request.param == "local":
        from e3.api.open import create

        create(tmp_path / "repo", settings=settings)
        handle = e3.open(tmp_path / "repo", settings=settings)
    elif request.param == "inproc":
        from e3.client.remote import open_remote

        transport, _root = inproc_app
        name = f"r{uuid.uuid4().hex[:10]}"
        url = f"http://testserver/repos/{name}"
        from e3.client.servers import create_remote

        create_remote(url, settings, transport=transport)
        handle = open_remote(url, settings, transport=transport)
    else:
        served: Served = request.getfixturevalue("api_server")
        url, _path = served.new_repo()
        handle = e3.open(url, settings=settings)
    with handle:
        yield handle
