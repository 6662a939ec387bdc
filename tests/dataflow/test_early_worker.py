"""``e3 start`` starts its first warm East worker while the engine loads.

The run adopts it; when nothing does (a fully cached run), it is stopped
when the command ends, having run nothing, and never outlives it. The guardian
is not started early: a cached run starts no process but that worker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import e3.api.open
from e3.base import settled
from e3.base.config import load_settings
from e3.runners import early
from tests_support import DEADLINE, run_cli, run_e3, wait_for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def deployed(tmp_path: Path, build_example: Callable[[str], Path]) -> Iterator[Path]:
    """A repository with ``examples/fanout.py`` (10 East tasks) deployed as ``ws``."""
    path = tmp_path / "repo"
    for args in (
        ("repo", "create", path),
        ("package", "import", path, build_example("fanout")),
        ("workspace", "deploy", path, "ws", "fanout10"),
    ):
        assert run_cli(*args).code == 0
    yield path
    early.discard()


def test_the_run_adopts_the_worker_started_early(deployed: Path) -> None:
    early.start_early()
    started = early.waiting()
    assert len(started) == 1
    with e3.api.open.open(deployed) as r:
        outcome = r.start("ws").wait()
        assert outcome.status == "completed" and outcome.counts.executed == 10
        assert early.waiting() == []  # adopted, still serving this engine
        assert all(_alive(pid) for pid in started)
    wait_for(lambda: not any(_alive(pid) for pid in started), "the engine to stop them")


def test_a_worker_nobody_adopted_is_stopped(deployed: Path) -> None:
    assert run_cli("start", deployed, "ws").code == 0
    early.start_early()
    started = early.waiting()
    with e3.api.open.open(deployed) as r:
        assert r.start("ws").wait().counts.cached == 10  # no task needed a worker
    assert early.waiting() == started and _alive(started[0])
    early.discard()
    assert early.waiting() == []
    assert not any(_alive(pid) for pid in started)


def test_a_cached_cli_run_leaves_no_process_behind(deployed: Path) -> None:
    assert run_cli("start", deployed, "ws").code == 0
    mark = f"E3_TEST_MARK={uuid.uuid4()}"
    env = {**os.environ, mark.split("=")[0]: mark.split("=")[1]}
    result = run_e3("start", deployed, "ws", env=env)
    assert result.code == 0, result.err
    assert "Cached:   10" in result.out

    def marked() -> list[int]:
        pids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    environ = Path(f"/proc/{d}/environ").read_bytes()
                except OSError:
                    continue
                if mark.encode() in environ.split(b"\0"):
                    pids.append(int(d))
        return pids

    wait_for(lambda: marked() == [], "no process of the command to remain", timeout=DEADLINE)


def test_it_can_be_turned_off_and_a_remote_run_starts_nothing(deployed: Path) -> None:
    assert load_settings({"E3_EARLY_WORKER": "0"}).early_worker is False
    assert load_settings({}).early_worker is True
    result = run_e3("start", deployed, "ws", env={"E3_EARLY_WORKER": "0"})
    assert result.code == 0 and "Executed: 10" in result.out, result.err
    e3.api.open.warm_up("http://127.0.0.1:1/repos/x")
    assert early.waiting() == []


def test_no_worker_is_started_for_a_workspace_its_last_run_left_up_to_date(
    deployed: Path, tmp_path: Path
) -> None:
    # Such a run finds every task cached: the worker would cost ~0.2 s of CPU for nothing.
    assert not settled.looks_settled(deployed, "ws")  # deployed, never run
    assert run_cli("start", deployed, "ws").code == 0
    assert settled.looks_settled(deployed, "ws")
    e3.api.open.warm_up(deployed, "ws")
    assert early.waiting() == []
    e3.api.open.warm_up(deployed)  # no workspace named (--force): as before
    assert len(early.waiting()) == 1
    early.discard()
    # Setting an input, or deploying again, ends the hint until a run settles it again.
    value = tmp_path / "x.east"
    value.write_text("5")
    assert run_cli("set", deployed, "ws.inputs.x", value).code == 0
    assert not settled.looks_settled(deployed, "ws")
    e3.api.open.warm_up(deployed, "ws")
    assert len(early.waiting()) == 1
    early.discard()
    assert run_cli("start", deployed, "ws").code == 0
    assert settled.looks_settled(deployed, "ws")
    assert run_cli("workspace", "deploy", deployed, "ws", "fanout10").code == 0
    assert not settled.looks_settled(deployed, "ws")
