"""The web view: how late events reach the browser, and how fast a big graph is drawn.

Headless Chromium (Debian's ``/usr/bin/chromium``, through Playwright) on a page
served by the API server, run in this process so that the engine's emission of
each event can be timed: ``LocalRun.add_event`` is wrapped to note the wall
clock as the engine hands it over, and the page notes ``Date.now()`` as each
event arrives (``window.e3view.events``). Same machine, same clock.

* latency, run on the server's engine (started from the page's Start button):
  events go from the engine to the server-sent event stream directly;
* latency, run by another engine (as ``e3 start`` in another process): the
  server follows it through the run's event log on disk. Only events emitted
  after the page's stream had attached are counted (the page finds the run
  through the history long poll first);
* drawing: from navigation to the graph painted (``window.e3view.graphDrawn``:
  page load, the graph request, the SVG built and painted) for 1,000-task
  dataflows, the first time (layout computed) and again (layout cached by the
  server), with the graph request and the browser's part apart. A small
  workspace is loaded first, so the server's own start-up imports are not
  counted against the big graphs, and each page is closed only once it shows
  the workspace's states (asked for after the graph is painted): otherwise the
  server would still be computing them during the next page's measurement.
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, table

sys.path.insert(0, str(ROOT / "examples"))

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


class _Server:
    """The API server (with the web view) on 127.0.0.1, in a thread of this process."""

    def __init__(self, repo: Path) -> None:
        import uvicorn

        from e3.server.app import ServerConfig, create_app
        from e3.server.repos import Repositories

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.app = create_app(ServerConfig(Repositories(single=repo), self.url))
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _emissions() -> dict[tuple[str, int], float]:
    """Wrap the engine's hand-over of events to note when each one was emitted (ms)."""
    from e3.api.runs import LocalRun

    emitted: dict[tuple[str, int], float] = {}
    original = LocalRun.add_event

    def add_event(self: LocalRun, event: Any) -> None:
        emitted[(self.id, event.seq)] = time.time() * 1000
        original(self, event)

    LocalRun.add_event = add_event  # type: ignore[method-assign]
    return emitted


def _setup(root: Path, sizes: dict[str, tuple[int, str]]) -> Path:
    import fanout

    import e3
    from e3.api.open import create

    repo = root / "repo"
    create(repo)
    with e3.open(repo) as r:
        for ws, (n, shape) in sizes.items():
            zip_path = root / f"{ws}.zip"
            e3.export(fanout.make(n, shape), zip_path)
            r.workspace_import(ws, zip_path, force=True)
    return repo


def _latencies(
    page: Any, emitted: dict[tuple[str, int], float], run_id: str
) -> tuple[list[float], int]:
    received = page.evaluate(f"window.e3view.events.filter(e => e.run === {run_id!r})")
    attached = min(e["at"] for e in received)
    out = [
        e["at"] - emitted[(run_id, e["seq"])]
        for e in received
        if (run_id, e["seq"]) in emitted and emitted[(run_id, e["seq"])] >= attached
    ]
    return out, len(received)


def _wait_run_end(page: Any, run_id: str, timeout: float = 120) -> None:
    page.wait_for_function(
        f"window.e3view.events.some(e => e.run === {run_id!r} && e.kind === 'run_finished')",
        timeout=timeout * 1000,
    )


def _latency_rows(browser: Any, root: Path, n: int) -> list[list[str]]:
    import e3

    emitted = _emissions()
    repo = _setup(root, {"here": (n, "chain"), "there": (n, "chain")})
    server = _Server(repo)
    rows = []
    try:
        page = browser.new_page()
        page.goto(f"{server.url}/ui/#/repos/default/ws/here")
        page.wait_for_selector("svg[data-ready]")
        page.click("#force")
        page.wait_for_function("window.e3view.events.length > 0")
        run_id = page.evaluate("window.e3view.events[0].run")
        _wait_run_end(page, run_id)
        rows.append(_row("run on the server's engine", *_latencies(page, emitted, run_id)))
        page.goto(f"{server.url}/ui/#/repos/default/ws/there")
        page.wait_for_selector("svg[data-ready]")
        page.wait_for_timeout(500)  # the history long poll is waiting
        with e3.open(repo) as other:  # another engine: followed through the event log
            run = other.start("there", force=True)
            _wait_run_end(page, run.id)
            run.wait()
        rows.append(_row("run by another engine (event log)", *_latencies(page, emitted, run.id)))
        page.close()
    finally:
        server.stop()
    return rows


def _row(what: str, lat: list[float], received: int) -> list[str]:
    lat.sort()
    p90 = lat[int(0.9 * (len(lat) - 1))]
    return [
        what,
        f"{len(lat)} of {received}",
        f"{statistics.median(lat):.1f} ms",
        f"{p90:.1f} ms",
        f"{lat[-1]:.1f} ms",
    ]


_TIMES = """() => {
  const graph = performance.getEntriesByType("resource").find(e => e.name.endsWith("/graph"));
  return [window.e3view.graphDrawn, graph.responseEnd - graph.requestStart,
          window.e3view.graphDrawn - window.e3view.graphFetched];
}"""


def _draw_rows(browser: Any, root: Path, n: int) -> list[list[str]]:
    repo = _setup(root, {"warmup": (1, "fanout"), "fanout": (n, "fanout"), "chain": (n, "chain")})
    server = _Server(repo)
    rows = []
    try:
        for ws in ("warmup", "fanout", "chain"):
            times = []
            for _ in range(4):
                page = browser.new_page()
                page.set_viewport_size({"width": 1280, "height": 720})
                page.goto(f"{server.url}/ui/#/repos/default/ws/{ws}")
                page.wait_for_selector("svg[data-ready]", timeout=60_000)
                times.append(page.evaluate(_TIMES))
                nodes = page.evaluate("window.e3view.graphNodes")
                # Left once its states are shown: the server's work for this page must not
                # spill into the next measurement.
                page.wait_for_function("window.e3view.statusShown", timeout=60_000)
                page.close()
            if ws == "warmup":  # the server's first requests import what it needs
                continue
            again = times[1:]
            rows.append(
                [
                    f"{n}-task {ws}",
                    str(nodes),
                    f"{times[0][0]:.0f} ms ({times[0][1]:.0f} + {times[0][2]:.0f})",
                    f"{statistics.median(t[0] for t in again):.0f} ms",
                    f"{statistics.median(t[1] for t in again):.0f} ms",
                    f"{statistics.median(t[2] for t in again):.0f} ms",
                ]
            )
    finally:
        server.stop()
    return rows


def run(*, quick: bool = False, sizes: str | None = None) -> None:
    """Print the tables."""
    if not Path(CHROMIUM).exists():
        print(f"(skipped: no Chromium at {CHROMIUM})")
        return
    from playwright.sync_api import sync_playwright

    n_events = 20 if quick else 200
    n_graph = 100 if quick else 1000
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        # The page's CSP forbids evaluating strings, which wait_for_function does.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS).new_context(
            bypass_csp=True
        )
        try:
            print(f"Event latency, engine → browser, {n_events}-task chain (--force)\n")
            rows = _latency_rows(browser, Path(tmp) / "lat", n_events)
            table(["run", "events counted", "median", "p90", "max"], rows)
            print(f"\nGraph drawn in headless Chromium (navigation → SVG), {n_graph} tasks\n")
            rows = _draw_rows(browser, Path(tmp) / "draw", n_graph)
            table(
                [
                    "dataflow",
                    "nodes",
                    "first (graph request + draw)",
                    "again: total",
                    "graph request",
                    "draw + paint",
                ],
                rows,
            )
            print(
                "\n(total: navigation to the graph painted; first: the layout computed, then "
                "cached by package)"
            )
        finally:
            browser.close()
