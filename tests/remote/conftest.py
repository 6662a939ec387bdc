"""Fixtures for the HTTP API tests: real ``e3-api-server`` processes on 127.0.0.1.

Servers are started once per test session (per xdist worker) and shared: every test
works in repositories of its own, named uniquely, so tests cannot see each other's data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests_support import Served, Target, run_cli, start_server


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A multi-repository server without authentication."""
    base = tmp_path_factory.mktemp("api")
    root = base / "repos"
    root.mkdir()
    server = start_server("--repos", root, log=base / "server.log")
    try:
        yield Served(server, root)
    finally:
        server.stop()


@pytest.fixture(params=["local", "remote"])
def target(request: pytest.FixtureRequest, tmp_path: Path, api_server: Served) -> Target:
    """An empty repository, on a local path or on the test server."""
    if request.param == "local":
        path = tmp_path / "repo"
        r = run_cli("repo", "create", path)
        assert r.code == 0, r.err
        return Target("local", str(path), path)
    url, path = api_server.new_repo()
    return Target("remote", url, path)
