"""The web view in headless Chromium, against real servers on 127.0.0.1.

Few tests, each driving a whole story, because a browser is slow to start: runs
started from the page and from the command line, every node turning to its
state, a failed task's stderr, the run history, and a server with
authentication that shows nothing without a token.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from browser.conftest import Viewer, start_viewer
from tests_support import (
    E3Process,
    export_to,
    failing_package,
    run_cli,
    shell_package,
    start_server,
)

pytestmark = pytest.mark.timeout(240)


def ok(*args: str | os.PathLike[str]) -> None:
    r = run_cli(*args)
    assert r.code == 0, f"e3 {args}: {r.err}"


@pytest.fixture
def viewer(tmp_path: Path, build_example: Callable[[str], Path]) -> Iterator[Viewer]:
    """A repository with diamond (``d``), failing (``f``) and a slow shell task (``s``), served."""
    repo = tmp_path / "repo"
    ok("repo", "create", repo)
    zips = {
        "d": build_example("diamond"),
        "f": export_to(failing_package(), tmp_path),
        "s": export_to(shell_package("sleep 1.5; cp {inputs[0]} {output}"), tmp_path),
    }
    for ws, zip_path in zips.items():
        ok("workspace", "import", repo, ws, zip_path)
    v = start_viewer(repo)
    try:
        yield v
    finally:
        v.stop()


def states(page: Any, kind: str = "task") -> dict[str, str]:
    """Every node's state as the page shows it."""
    found: dict[str, str] = page.eval_on_selector_all(
        f"[data-{kind}]",
        f"ns => Object.fromEntries(ns.map(n => [n.dataset.{kind}, n.dataset.state]))",
    )
    return found


def wait_states(page: Any, expected: dict[str, str]) -> None:
    """Until every named task shows its expected state (bounded by the page's timeout)."""
    page.wait_for_function(
        "want => Object.entries(want).every(([t, s]) =>"
        " document.querySelector(`[data-task='${t}']`)?.dataset.state === s)",
        arg=expected,
    )


def test_runs_from_the_page_turn_nodes_done_then_cached_and_failures_show_stderr(
    page: Any, viewer: Viewer
) -> None:
    page.goto(f"{viewer.url}/ui/#/repos/default/ws/d")
    page.wait_for_selector("svg[data-ready]")
    assert set(states(page)) == {"left", "right", "merge"}
    assert set(states(page, "dataset")) == {
        ".inputs.a",
        ".inputs.b",
        ".tasks.left.output",
        ".tasks.right.output",
        ".tasks.merge.output",
    }
    assert states(page)["merge"] != "uptodate"  # never run
    page.click("#start")
    wait_states(page, {"left": "uptodate", "right": "uptodate", "merge": "uptodate"})
    page.wait_for_function("!document.querySelector('#start').disabled")
    assert set(states(page, "dataset").values()) == {"uptodate"}
    page.click("#start")
    wait_states(page, {"left": "cached", "right": "cached", "merge": "cached"})
    # The history lists both runs, newest first.
    page.click("#runs-tab")
    page.wait_for_function("document.querySelectorAll('#run-list li').length === 2")
    # A task's panel: its execution, and a page of its output's value.
    page.click("[data-task='merge']")
    page.wait_for_selector("text=Cache hit")
    page.click("[data-value='.tasks.merge.output'] button")
    page.wait_for_function(
        "document.querySelector(\"[data-value='.tasks.merge.output'] pre\").textContent"
        ".includes('65')"
    )
    # A failing workspace: the failed task's stderr, in its panel.
    page.goto(f"{viewer.url}/ui/#/repos/default/ws/f")
    page.wait_for_selector("svg[data-ready]")
    page.click("#start")
    wait_states(page, {"bad": "failed", "ok": "uptodate"})
    page.click("[data-task='bad']")
    page.wait_for_function("document.querySelector('#log-stderr')?.textContent.includes('boom')")
    assert "Error: boom" in page.inner_text("#stderr-tail")


def test_a_run_started_from_the_command_line_is_shown_live(page: Any, viewer: Viewer) -> None:
    page.goto(f"{viewer.url}/ui/#/repos/default/ws/s")
    page.wait_for_selector("svg[data-ready]")
    repo = viewer.proc.args[-1]  # type: ignore[index]
    cli = E3Process("start", repo, "s")
    try:
        wait_states(page, {"t": "running"})
        wait_states(page, {"t": "uptodate"})
        assert cli.finish().code == 0
    finally:
        cli.kill()
    events = page.evaluate("window.e3view.events.map(e => e.kind)")
    assert events[0] == "run_started" and "task_started" in events


ISSUER, AUDIENCE = "https://issuer.test", "e3-tests"


def test_with_authentication_the_page_shows_nothing_without_a_token(
    strict_page: Any, tmp_path: Path
) -> None:
    page = strict_page
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "provider.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    root = tmp_path / "repos"
    root.mkdir()
    ok("repo", "create", root / "secretrepo")
    ok("workspace", "import", root / "secretrepo", "hidden", export_to(failing_package(), tmp_path))
    server = start_server(
        "--repos",
        root,
        "--auth-key",
        pem,
        "--auth-issuer",
        ISSUER,
        "--auth-audience",
        AUDIENCE,
        log=tmp_path / "server.log",
    )
    try:
        # Every data route of the page refuses a request without a token.
        doc = httpx.get(f"{server.url}/api/openapi.json").json()["paths"]
        ui_routes = [p for p in doc if p.startswith("/ui/")]
        assert len(ui_routes) >= 10, ui_routes
        for template in ui_routes:
            for method in doc[template]:
                path = template.format(
                    repo="secretrepo", ws="hidden", task="bad", run="0" * 8, path="inputs/x"
                )
                r = httpx.request(method, f"{server.url}{path}")
                assert r.status_code == 401, (method, path, r.status_code)
        # The page asks for a token and shows no data.
        page.goto(f"{server.url}/ui/#/repos/secretrepo/ws/hidden")
        page.wait_for_selector("#login:not([hidden])")
        # (The names in the breadcrumbs are the page's own address, not the server's data.)
        shown = page.inner_text("main")
        assert "failing" not in shown and "bad" not in shown, shown
        assert page.query_selector("svg[data-ready]") is None
        # A bad token is refused the same way; a valid one shows the workspace.
        page.fill("#token", "not-a-jwt")
        page.click("#login-form button")
        page.wait_for_selector("#login:not([hidden])")
        assert page.query_selector("svg[data-ready]") is None
        import time

        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600}
        page.fill("#token", jwt.encode(claims, key, "RS256"))
        page.click("#login-form button")
        page.wait_for_selector("svg[data-ready]")
        assert set(states(page)) == {"ok", "bad", "after", "other", "later"}
    finally:
        server.stop()
