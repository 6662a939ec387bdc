"""The guardian kills registered task groups when the engine's pipe closes, and only those.

Unregistrations may be deferred (sent with the next registration or a flush):
these tests check that a deferred one still protects its group, that it travels
with the next registration even if the engine then dies without flushing, and
that the process runner flushes on its own shortly after a task ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e3.runners.base import RunRequest
from e3.runners.guardian import Guardian, kill_group
from e3.runners.process import ProcessRunner


@pytest.fixture
def groups() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Process groups (``sleep`` in a session of its own), killed and reaped afterwards."""
    made: list[subprocess.Popen[bytes]] = []
    yield made
    for p in made:
        kill_group(p.pid)
        p.wait()


def _group(made: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(["sleep", "60"], start_new_session=True)
    made.append(p)
    return p


def _engine_dies(g: Guardian) -> None:
    """What the guardian sees when the engine is SIGKILLed: its pipe closes, nothing flushed."""
    assert g._proc is not None and g._proc.stdin is not None
    g._proc.stdin.close()
    g._proc.wait(timeout=10)


def test_a_registered_group_dies_with_the_engine(groups: list[subprocess.Popen[bytes]]) -> None:
    g = Guardian()
    p = _group(groups)
    g.register(p.pid)
    _engine_dies(g)
    assert p.wait(timeout=10) == -9


def test_a_deferred_unregistration_travels_with_the_next_registration(
    groups: list[subprocess.Popen[bytes]],
) -> None:
    g = Guardian()
    done, running = _group(groups), _group(groups)
    g.register(done.pid)
    g.unregister(done.pid, defer=True)
    assert g._pending  # not sent yet
    g.register(running.pid)  # one write: "-done" then "+running"
    assert not g._pending
    _engine_dies(g)
    assert running.wait(timeout=10) == -9
    assert done.poll() is None  # unregistered: left alone


def _deferred(made: list[subprocess.Popen[bytes]]) -> tuple[Guardian, subprocess.Popen[bytes]]:
    """A guardian and a group it was told of, whose unregistration is deferred."""
    g = Guardian()
    kept = _group(made)
    g.register(kept.pid)
    g.unregister(kept.pid, defer=True)
    assert g._pending
    return g, kept


def test_deferred_unregistrations_are_sent_when_many_wait(
    groups: list[subprocess.Popen[bytes]],
) -> None:
    g, kept = _deferred(groups)
    for _ in range(Guardian.MAX_PENDING - 1):
        g.unregister(999_999_999, defer=True)  # no such group: the guardian ignores it
    assert not g._pending
    _engine_dies(g)
    assert kept.poll() is None


def test_close_sends_pending_unregistrations_first(
    groups: list[subprocess.Popen[bytes]],
) -> None:
    g, kept = _deferred(groups)
    g.close()  # the guardian kills what is still registered as it exits
    assert kept.poll() is None


def test_the_process_runner_flushes_shortly_after_a_task_ends(tmp_path: Path) -> None:
    g = Guardian()
    runner = ProcessRunner(guardian=g)
    request = RunRequest(
        argv=("true",),
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        stdout=tmp_path / "out",
        stderr=tmp_path / "err",
    )

    async def go() -> None:
        result = await runner.run(request, lambda pid: None)
        assert result.exit_code == 0
        assert g._pending  # deferred...
        deadline = asyncio.get_running_loop().time() + 5
        while g._pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert not g._pending  # ...and sent by the runner's timer, without another task
        await runner.close()

    try:
        asyncio.run(go())
    finally:
        g.close()
    assert g._proc is None


def _children() -> list[str]:
    """Command lines of this process's live children."""
    out = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError):
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return out


def test_a_task_cancelled_while_it_is_being_spawned_leaves_no_process(tmp_path: Path) -> None:
    g = Guardian()
    runner = ProcessRunner(guardian=g)
    marker = f"{tmp_path}/never"
    request = RunRequest(
        argv=("sleep", "30", marker),  # an argument only this test's process has
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        stdout=tmp_path / "out",
        stderr=tmp_path / "err",
    )

    async def go() -> None:
        task = asyncio.ensure_future(runner.run(request, lambda pid: None))
        await asyncio.sleep(0)  # run() is now waiting for the spawning thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await runner.close()

    try:
        asyncio.run(go())
    finally:
        g.close()
    assert not [c for c in _children() if marker in c]
