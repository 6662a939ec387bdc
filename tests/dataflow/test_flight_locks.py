"""Single-flight locks: one shared descriptor per run, exclusion between runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from e3.core.flights import FlightTable
from e3.store.repository import RepoStore, create_repository

TASK = "a" * 64
INPUTS = "b" * 64
OTHER = "c" * 64


@pytest.fixture
def repo(tmp_path: Path) -> RepoStore:
    return create_repository(tmp_path / "repo", durable=False)[0]


def test_another_table_is_excluded_until_release(repo: RepoStore) -> None:
    run_a, run_b = FlightTable(repo), FlightTable(repo)
    try:
        held = run_a.lock(TASK, INPUTS)
        assert held.try_acquire()
        assert not run_b.lock(TASK, INPUTS).try_acquire()
        assert run_b.lock(TASK, OTHER).try_acquire()  # another pair is free
        held.release()
        assert run_b.lock(TASK, INPUTS).try_acquire()
        assert not run_a.lock(TASK, INPUTS).try_acquire()
    finally:
        run_a.close()
        run_b.close()


def test_a_pair_held_by_the_run_itself_counts_as_taken(repo: RepoStore) -> None:
    run = FlightTable(repo)
    try:
        first = run.lock(TASK, INPUTS)
        assert first.try_acquire()
        second = run.lock(TASK, INPUTS)
        assert not second.try_acquire()  # the same descriptor would grant it: the table refuses
        first.release()
        assert second.try_acquire()
        first.release()  # a released lock releasing again does not drop the new holder's
        outsider = FlightTable(repo)
        assert not outsider.lock(TASK, INPUTS).try_acquire()
        outsider.close()
    finally:
        run.close()


def test_many_held_locks_share_one_descriptor(repo: RepoStore) -> None:
    run = FlightTable(repo)
    try:
        before = len(os.listdir("/proc/self/fd"))
        locks = [run.lock(TASK, f"{i:064x}") for i in range(200)]
        assert all(lock.try_acquire() for lock in locks)
        assert len(os.listdir("/proc/self/fd")) == before + 1
    finally:
        run.close()


def test_close_drops_every_lock_of_the_run(repo: RepoStore) -> None:
    run = FlightTable(repo)
    assert run.lock(TASK, INPUTS).try_acquire()
    assert run.lock(TASK, OTHER).try_acquire()
    run.close()
    other = FlightTable(repo)
    try:
        assert other.lock(TASK, INPUTS).try_acquire()
        assert other.lock(TASK, OTHER).try_acquire()
    finally:
        other.close()


def test_another_process_is_excluded(repo: RepoStore) -> None:
    run = FlightTable(repo)
    probe = (
        "import sys\n"
        "from e3.core.flights import FlightTable\n"
        "from e3.store.repository import open_repository\n"
        f"t = FlightTable(open_repository({str(repo.root)!r}))\n"
        f"sys.exit(0 if t.lock({TASK!r}, {INPUTS!r}).try_acquire() else 3)\n"
    )
    try:
        lock = run.lock(TASK, INPUTS)
        assert lock.try_acquire()
        assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 3
        lock.release()
        assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0
    finally:
        run.close()
