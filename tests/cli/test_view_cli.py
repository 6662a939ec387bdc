"""``e3 view`` arguments (the served page itself is tested in tests/browser)."""

from __future__ import annotations

from pathlib import Path

from tests_support import run_cli


def test_for_a_server_url_the_page_address_is_printed() -> None:
    r = run_cli("view", "http://127.0.0.1:9/repos/team", "my ws")
    assert r.code == 0, r.err
    assert r.out.strip() == "http://127.0.0.1:9/ui/#/repos/team/ws/my%20ws"


def test_a_path_that_is_no_repository_is_refused(tmp_path: Path) -> None:
    r = run_cli("view", tmp_path / "nothing")
    assert r.code == 3 and r.err.startswith("Error: no e3 repository"), r.err
    r = run_cli("view", "http://127.0.0.1:9/elsewhere")
    assert r.code == 2 and "repos/<name>" in r.err, r.err
