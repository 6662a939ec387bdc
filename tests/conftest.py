"""Shared fixtures: isolated environment, real repositories on temp dirs, CLI runners."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from e3.store.repository import RepoStore, create_repository
from tests_support import Served, Target, run_cli, start_server

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# The fuzz package (its input builders are shared with the hostile tests) lives at the root.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
E3_BIN = Path(sys.executable).with_name("e3")

# Started in the background of a shell without job control (`cmd &`, nohup), the suite
# inherits SIGINT ignored, and an ignored signal stays ignored across exec: every e3 it
# spawns would then (rightly) leave SIGINT alone, and the tests of Ctrl-C would fail for
# the way they were launched. A terminal's Ctrl-C is what they simulate, so give the
# processes they spawn the default disposition a terminal gives.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test sees the developer's E3_* settings or home directory."""
    for key in list(os.environ):
        if key.startswith("E3_"):
            monkeypatch.delenv(key)
    # A developer's shell may set it; users' seldom do, and with it every e3 the tests
    # spawn flushes each line itself, which hid output stuck in a pipe's buffer.
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    monkeypatch.setenv("E3_HOME", str(tmp_path_factory.mktemp("e3home")))


@pytest.fixture
def repo(tmp_path: Path) -> RepoStore:
    """A fresh, empty repository."""
    r, _ = create_repository(tmp_path / "repo")
    return r


@pytest.fixture
def build_example(tmp_path: Path) -> Iterator[object]:
    """Export an example package (``examples/<name>.py``) to a zip; returns the zip path."""
    from e3.sdk.loader import load_one
    from e3.sdk.package import export

    def build(name: str, target: str | None = None) -> Path:
        pkg = load_one(str(EXAMPLES / f"{name}.py") + (f":{target}" if target else ""))
        out = tmp_path / f"{pkg.name}-{pkg.version}.zip"
        export(pkg, out)
        return out

    return build


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
