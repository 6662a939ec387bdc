"""The web view's run history, as a page polls it from a real server.

A page keeps a long poll open on the history for as long as it is shown. Each
turn of that poll used to decode every run record of the workspace in full (on
10,000 tasks and nine runs: 1.8 s, four times a second, for every open page);
it now reads brief records, kept in the repository's cache, and only the
newest one while nothing changes.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from east import IntegerType

import e3
from tests_support import DEADLINE, Served, export_to, run_cli

pytestmark = pytest.mark.timeout(120)


def _history_url(served: Served, name: str) -> str:
    return f"{served.server.url}/ui/api/repos/{name}/workspaces/ws/runs"


def test_the_history_long_poll_answers_from_brief_records(
    api_server: Served, tmp_path: Path
) -> None:
    url, root = api_server.new_repo()
    name = url.rsplit("/", 1)[1]
    x = e3.input("x", IntegerType, default=1)
    pkg = e3.package(
        "hist", "1.0.0", e3.custom_task("t", [x], IntegerType, "cp {inputs[0]} {output}")
    )
    assert run_cli("package", "import", url, export_to(pkg, tmp_path)).code == 0
    assert run_cli("workspace", "deploy", url, "ws", "hist").code == 0
    for _ in range(2):
        assert run_cli("start", url, "ws").code == 0
    with httpx.Client(timeout=DEADLINE) as client:
        runs = client.get(_history_url(api_server, name)).json()
        assert [r["summary"]["completed"] for r in runs] == [1, 1]
        assert [r["summary"]["cached"] for r in runs] == [1, 0]  # newest first
        # Both records were read brief, and their brief forms kept for the next poll.
        assert len(list((root / "cache" / "runs" / "ws").iterdir())) == 2
        known = f"{runs[0]['id']}:{runs[0]['status']}"
        began = time.monotonic()
        again = client.get(_history_url(api_server, name), params={"known": known, "wait": 1})
        assert time.monotonic() - began >= 0.9  # nothing changed: it waited its second
        assert again.json() == runs
        # A new run ends the wait at once, with the whole history.
        assert run_cli("start", url, "ws", "--force").code == 0
        newer = client.get(_history_url(api_server, name), params={"known": known, "wait": 20})
        assert newer.json()[0]["id"] not in {r["id"] for r in runs}
        assert [r["id"] for r in newer.json()[1:]] == [r["id"] for r in runs]
