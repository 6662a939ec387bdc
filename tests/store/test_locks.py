"""Workspace locks with real processes holding them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e3.errors import LockConflict
from e3.store import locks

HOLDER = """
import sys, time
from pathlib import Path
from e3.store import locks
held = locks.acquire(Path(sys.argv[1]), sys.argv[2], operation="dataflow", label="workspace 'ws'",
                     command="holder-process")
print("held", flush=True)
sys.stdin.read()   # hold until stdin closes
"""


def wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float = 20) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = proc.stdout.readline()
    assert line.strip() == expected, f"holder said {line!r}"
    assert time.monotonic() < deadline


@pytest.fixture
def spawn_holder(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def spawn(path: Path, mode: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), mode],
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        procs.append(p)
        wait_for_line(p, "held")
        return p

    yield spawn
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        for stream in (p.stdin, p.stdout):
            if stream is not None:
                stream.close()


def test_shared_locks_coexist(tmp_path: Path, spawn_holder: object) -> None:
    path = tmp_path / "ws.lock"
    spawn_holder(path, "shared")  # type: ignore[operator]
    with locks.acquire(path, "shared", operation="dataset_write", label="workspace 'ws'"):
        pass


def test_exclusive_refused_while_shared_held_and_names_holder(
    tmp_path: Path, spawn_holder: object
) -> None:
    path = tmp_path / "ws.lock"
    proc = spawn_holder(path, "shared")  # type: ignore[operator]
    with pytest.raises(LockConflict) as info:
        locks.acquire(path, "exclusive", operation="deployment", label="workspace 'ws'")
    msg = info.value.message
    assert "workspace 'ws' is locked by" in msg
    assert f"pid {proc.pid}" in msg
    assert "holder-process" in msg


def test_shared_refused_while_exclusive_held(tmp_path: Path, spawn_holder: object) -> None:
    path = tmp_path / "ws.lock"
    spawn_holder(path, "exclusive")  # type: ignore[operator]
    with pytest.raises(LockConflict):
        locks.acquire(path, "shared", operation="dataset_write", label="workspace 'ws'")


def test_killed_holder_releases_lock(tmp_path: Path, spawn_holder: object) -> None:
    path = tmp_path / "ws.lock"
    proc = spawn_holder(path, "exclusive")  # type: ignore[operator]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with locks.acquire(path, "exclusive", operation="deployment", label="workspace 'ws'"):
        pass
    # The stale record names a dead process: holders() reports nobody.
    assert locks.holders(path) == []


def test_lock_file_is_never_unlinked(tmp_path: Path) -> None:
    path = tmp_path / "ws.lock"
    held = locks.acquire(path, "shared", operation="dataset_write", label="ws")
    inode = path.stat().st_ino
    held.release()
    held.release()  # idempotent
    assert path.exists() and path.stat().st_ino == inode


def test_release_of_one_shared_holder_keeps_exclusive_out(
    tmp_path: Path, spawn_holder: object
) -> None:
    """The reference's unlink race: after one shared holder releases, an exclusive locker
    must still be refused while another shared holder holds the lock."""
    path = tmp_path / "ws.lock"
    spawn_holder(path, "shared")  # type: ignore[operator]
    mine = locks.acquire(path, "shared", operation="dataset_write", label="ws")
    mine.release()
    with pytest.raises(LockConflict):
        locks.acquire(path, "exclusive", operation="deployment", label="ws")


def test_holders_lists_current_process(tmp_path: Path) -> None:
    path = tmp_path / "ws.lock"
    with locks.acquire(path, "exclusive", operation="export", label="ws", command="me"):
        hs = locks.holders(path)
    assert [h.pid for h in hs] == [os.getpid()]
    assert hs[0].operation == "export"
    assert hs[0].mode == "exclusive"
