"""Dataflow starts racing each other on a real server: every accepted run is real and followable.

In the probe of issue 13, 8 threads posting ``…/dataflow`` for 20 s got 108 runs
accepted with 202 that then ended ``error: workspace_locked``; a run replaced by a newer
one could no longer be followed (``?run=<id>`` → 404); ``e3 start`` printed
``[CACHED] double``, then "run … is no longer the latest" and exited 3 although its run
ran. Here starts race from threads and from ``e3 start`` processes at once, and:

* every start is answered 202 (accepted) or 409 ``workspace_locked`` (refused), nothing else;
* every accepted run ends ``completed`` or ``failed``, never ``error`` (locked or otherwise);
* every accepted id stays followable, through ``/runs/<id>/events`` and through
  ``…/dataflow/execution?run=<id>``, after newer runs replaced it;
* every ``e3 start`` exits 0 (its run completed) or 4 (refused: the workspace was locked).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from east import IntegerType

import e3
from e3.codec import beast2
from e3.errors import E3Error, LockConflict, spec_for
from e3.model import wire
from e3.model.bodies import DataflowProgress, JobStarted
from e3.model.runs import StartOptions
from tests_support import CliResult, E3Process, ServerProcess, export_to, run_cli, start_server

pytestmark = pytest.mark.timeout(180)

THREADS = 8
#: How long the threads keep starting runs (the probe ran 20 s; CI is shared).
DURATION = 6.0
REPO = "race"


@pytest.fixture(scope="module")
def racing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("race")
    root = base / "repos"
    root.mkdir()
    x = e3.input("x", IntegerType, default=1)
    slow = e3.custom_task("slow", [x], IntegerType, "sleep 0.2; cp {inputs[0]} {output}")
    double = e3.custom_task("double", [slow], IntegerType, "cp {inputs[0]} {output}")
    zip_path = export_to(e3.package("race", "1.0.0", double), base)
    for args in (
        ("repo", "create", root / REPO),
        ("package", "import", root / REPO, zip_path),
        ("workspace", "deploy", root / REPO, "ws", "race"),
    ):
        r = run_cli(*args)
        assert r.code == 0, (args, r.err)
    server = start_server("--repos", root, log=base / "server.log")
    try:
        yield server
    finally:
        server.stop()


def _start(client: httpx.Client, force: bool) -> tuple[int, str | None, E3Error | None]:
    body = beast2.encode(
        wire.to_east(StartOptions(force=force), StartOptions), wire.east_type_of(StartOptions)
    )
    resp = client.post(
        f"/api/repos/{REPO}/workspaces/ws/dataflow",
        content=body,
        headers={"Content-Type": wire.BEAST2},
    )
    if resp.status_code == 202:
        started: JobStarted = wire.decode_reply(resp.content, JobStarted)
        return 202, started.id, None
    try:
        wire.decode_reply(resp.content, type(None))
    except E3Error as exc:
        return resp.status_code, None, exc
    raise AssertionError(f"HTTP {resp.status_code} without an error")


def _follow(client: httpx.Client, path: str, params: dict[str, str]) -> DataflowProgress:
    """The run's last page of events, once it is over (long polls, bounded)."""
    deadline = time.monotonic() + 60
    offset = 0
    while True:
        resp = client.get(path, params={**params, "offset": str(offset), "wait": "10"})
        assert resp.status_code == 200, (path, params, resp.status_code, resp.content[:300])
        progress: DataflowProgress = wire.decode_reply(resp.content, DataflowProgress)
        offset = progress.total_events
        if progress.status != "running":
            return progress
        assert time.monotonic() < deadline, f"run {params} still running after 60 s"


@dataclass
class Starters:
    """Threads posting starts until stopped, and what they got."""

    url: str
    count: int
    pace: float
    stop: threading.Event = field(default_factory=threading.Event)
    accepted: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Starters:
        for i in range(self.count):
            self.threads.append(threading.Thread(target=self._run, args=(i,)))
            self.threads[-1].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while not self.stop.is_set():
                status, run_id, err = _start(client, force=i % 2 == 0)
                if run_id is not None:
                    self.accepted.append(run_id)
                elif not isinstance(err, LockConflict):
                    self.unexpected.append(f"HTTP {status}: {err}")
                self.stop.wait(self.pace * (i + 1))  # paced, so the workspace is sometimes free


def _check_followable(url: str, accepted: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for run_id in accepted:
            by_id = _follow(client, f"/api/repos/{REPO}/runs/{run_id}/events", {})
            assert by_id.status in ("completed", "failed"), (run_id, by_id)
            assert by_id.error_code is None, (run_id, by_id.error_code, by_id.error_message)
            pinned = _follow(
                client, f"/api/repos/{REPO}/workspaces/ws/dataflow/execution", {"run": run_id}
            )
            assert pinned.status == by_id.status, (run_id, pinned, by_id)
            assert pinned.result is not None and pinned.result.run_id == run_id


def test_concurrent_starts_are_all_real_runs(racing: ServerProcess) -> None:
    with Starters(racing.url, THREADS, 0.02) as starters:
        starters.stop.wait(DURATION)
    assert not starters.unexpected, starters.unexpected[:5]
    assert len(starters.accepted) >= 5, f"only {len(starters.accepted)} starts were accepted"
    _check_followable(racing.url, starters.accepted)


def test_e3_start_racing_other_starts_reports_its_own_run(racing: ServerProcess) -> None:
    """Four ``e3 start`` at once, three times, while a thread keeps starting runs too."""
    url = racing.repo_url(REPO)
    results: list[CliResult] = []
    with Starters(racing.url, 1, 0.3) as starters:
        for _ in range(3):
            procs = [E3Process("start", url, "ws") for _ in range(4)]
            results.extend(p.finish(60) for p in procs)
    # Under load the thread's runs can win every round; once it has stopped, a start
    # that waits out the last of them must report a run of its own.
    results.append(E3Process("start", "--wait", "60", url, "ws").finish(90))
    locked = spec_for(LockConflict).exit_code
    for r in results:
        assert r.code in (0, locked), (r.code, r.out, r.err)
        assert "no longer the latest" not in r.err, r.err
        if r.code == locked:
            assert "locked" in r.err, r.err
        else:
            assert "[DONE]" in r.out or "[CACHED]" in r.out, r.out
    assert any(r.code == 0 for r in results), [r.err for r in results]
    assert not starters.unexpected, starters.unexpected[:5]
    _check_followable(racing.url, starters.accepted)
