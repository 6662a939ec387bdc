"""Fixtures for the web view's browser tests: headless Chromium driven by Playwright.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``; ``.ci/run`` installs
it when missing). Without it, or without Playwright, these tests are skipped with
the reason; CI always has both.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests_support import DEADLINE, E3_BIN

CHROMIUM = os.environ.get("E3_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module.

    Not per session: Playwright's synchronous API keeps an event loop running in the
    main thread while it is open, and in-process CLI calls of later tests on the
    same worker (``asyncio.run``) must not find one.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _page(browser: Any, *, strict: bool) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 720}, bypass_csp=not strict)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    pg.set_default_timeout(DEADLINE * 1000)
    try:
        yield pg
    finally:
        context.close()
    assert not errors, errors


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (its own storage); JavaScript errors fail the test.

    The page's Content-Security-Policy forbids evaluating strings, which
    Playwright's ``wait_for_function`` does: this page bypasses it.
    """
    yield from _page(browser, strict=False)


@pytest.fixture
def strict_page(browser: Any) -> Iterator[Any]:
    """A page under the server's Content-Security-Policy: any violation fails the test."""
    yield from _page(browser, strict=True)


@dataclass
class Viewer:
    """``e3 view <repo>`` running in the background."""

    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(DEADLINE)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def start_viewer(repo: Path) -> Viewer:
    """Start ``e3 view repo`` and read the page's URL from its first line (bounded wait)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("E3_")}
    env["E3_HOME"] = os.environ["E3_HOME"]
    proc = subprocess.Popen(
        [str(E3_BIN), "view", str(repo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + DEADLINE
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        byte = os.read(proc.stdout.fileno(), 1) if ready else b""
        if not byte:
            proc.kill()
            proc.wait()
            raise AssertionError(f"e3 view did not print its URL: {line!r}")
        line += byte
    text = line.decode().strip()
    assert text.startswith("e3 view: http://127.0.0.1:"), text
    return Viewer(text.removeprefix("e3 view: ").split("/ui/")[0], proc)
