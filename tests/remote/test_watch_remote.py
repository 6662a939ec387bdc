"""``e3 watch`` with a server URL as ``<repo>``: every step goes through the porcelain."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.test_watch import PACKAGE, Watch
from tests_support import Served, run_cli

pytestmark = pytest.mark.timeout(180)


def test_watch_deploys_and_runs_each_save_on_a_server(api_server: Served, tmp_path: Path) -> None:
    url, _ = api_server.new_repo()
    (tmp_path / "helper.py").write_text("K = 1\n")
    (tmp_path / "pkg.py").write_text(PACKAGE)
    w = Watch(url, "ws", tmp_path / "pkg.py", "--start")
    try:
        w.wait_count("Watching for changes", 1)
        assert run_cli("get", url, "ws.tasks.t").out.strip() == "2"
        (tmp_path / "helper.py").write_text("K = 9\n")
        w.wait_count("Watching for changes", 2)
        assert run_cli("get", url, "ws.tasks.t").out.strip() == "10"
        assert w.interrupt() == 130
    finally:
        w.kill()
