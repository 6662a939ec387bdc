"""Take docs/images/web-view.png: the web view of examples/diamond.py after a run.

``make screenshot``. A fresh repository with the diamond deployed and run once,
served by ``e3 view``, photographed in headless Chromium (Debian's
``/usr/bin/chromium``, through Playwright) with the merge task's panel open.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
E3 = str(Path(sys.executable).with_name("e3"))
OUT = ROOT / "docs" / "images" / "web-view.png"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def e3(*args: str) -> None:
    """Run an e3 command that must succeed."""
    subprocess.run([E3, *args], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    """Build, run, serve and photograph the diamond."""
    with tempfile.TemporaryDirectory() as tmp:
        repo, zip_path = f"{tmp}/repo", f"{tmp}/diamond.zip"
        e3("package", "build", str(ROOT / "examples" / "diamond.py"), "-o", zip_path)
        e3("repo", "create", repo)
        e3("workspace", "import", repo, "demo", zip_path)
        e3("start", repo, "demo")
        server = subprocess.Popen([E3, "view", repo, "demo"], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip().removeprefix("e3 view: ")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 640})
                page.goto(url)
                page.wait_for_selector("svg[data-ready]")
                page.click("[data-task='merge']")
                page.wait_for_selector("text=Cache hit")
                OUT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(OUT))
                browser.close()
        finally:
            server.terminate()
            server.wait(30)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
