"""Copying spooled logs into an execution directory: increments, the cap, reported sizes."""

from __future__ import annotations

from pathlib import Path

from e3.core import executions
from e3.dataflow.logcopy import (
    QUIET_FACTOR,
    QUIET_LOOKS_PER_SECOND,
    QUIET_MAX,
    QUIET_MIN,
    LogCopier,
)


def _spools(tmp_path: Path) -> tuple[Path, Path, Path]:
    out, err = tmp_path / "log-0.out", tmp_path / "log-0.err"
    out.write_bytes(b"")
    err.write_bytes(b"")
    return out, err, tmp_path / "exec"


def test_new_bytes_are_appended_as_they_arrive_and_quiet_logs_make_no_files(
    tmp_path: Path,
) -> None:
    out, err, edir = _spools(tmp_path)
    logs = LogCopier(1000, out, err, edir)
    logs.copy(final=False)
    assert not edir.exists()  # nothing written yet: no directory, no files
    out.write_bytes(b"one\n")
    logs.copy(final=False)
    with out.open("ab") as f:
        f.write(b"two\n")
    logs.copy(final=True)
    assert (edir / executions.STDOUT_FILE).read_bytes() == b"one\ntwo\n"
    assert not (edir / executions.STDERR_FILE).exists()


def test_reported_sizes_are_used_instead_of_looking(tmp_path: Path) -> None:
    out, err, edir = _spools(tmp_path)
    err.write_bytes(b"oops\n")
    logs = LogCopier(1000, out, err, edir)
    logs.copy(final=True, sizes=(0, 5))
    assert (edir / executions.STDERR_FILE).read_bytes() == b"oops\n"
    assert not (edir / executions.STDOUT_FILE).exists()
    quiet = LogCopier(1000, out, err, tmp_path / "quiet")
    quiet.copy(final=True, sizes=(0, 0))  # the runner says both are empty
    assert not (tmp_path / "quiet").exists()


def test_the_cap_keeps_the_first_bytes_and_says_how_many_were_dropped(tmp_path: Path) -> None:
    out, err, edir = _spools(tmp_path)
    logs = LogCopier(4, out, err, edir)
    out.write_bytes(b"abcdef")
    logs.copy(final=False)
    with out.open("ab") as f:
        f.write(b"gh")
    logs.copy(final=True, sizes=(8, 0))
    text = (edir / executions.STDOUT_FILE).read_bytes()
    assert text.startswith(b"abcd\n[e3: log truncated: 4 more bytes")


def test_a_quiet_task_is_looked_at_less_often_and_output_brings_it_back(tmp_path: Path) -> None:
    assert (QUIET_MIN, QUIET_FACTOR, QUIET_MAX) == (0.2, 4, 2.0)  # the times below follow
    out, err, edir = _spools(tmp_path)
    logs = LogCopier(1000, out, err, edir)
    log = edir / executions.STDOUT_FILE
    logs.poll(0.0)  # quiet: next look in 0.8 s
    out.write_bytes(b"a\n")
    logs.poll(0.7)
    assert not log.exists()  # not looked at yet
    logs.poll(0.8)
    assert log.read_bytes() == b"a\n"  # found: next look a tick (0.2 s) away
    for t in (1.0, 1.8, 3.8):  # quiet: waits of 0.8, then 2.0 (the cap)
        logs.poll(t)
    with out.open("ab") as f:
        f.write(b"b\n")
    logs.poll(5.7)
    assert log.read_bytes() == b"a\n"
    logs.poll(5.8)
    assert log.read_bytes() == b"a\nb\n"


def test_past_five_hundred_running_tasks_the_longest_wait_stretches(tmp_path: Path) -> None:
    """Issue 18: with a thousand tasks sleeping, looks every 2 s were most of the idle
    engine's CPU; past 500 running tasks the looks stay at 250 a second in all."""
    assert QUIET_LOOKS_PER_SECOND == 250
    out, err, edir = _spools(tmp_path)
    logs = LogCopier(1000, out, err, edir)
    for t in (0.0, 0.8):  # quiet: waits of 0.8, then 3.2
        logs.poll(t, running=1000)
    assert logs.next_look == 0.8 + 3.2
    logs.poll(4.0, running=1000)
    assert logs.next_look == 4.0 + 4.0  # 1,000 / 250 a second: 4 s, not 2
    logs.poll(8.0, running=100)
    assert logs.next_look == 8.0 + QUIET_MAX  # fewer tasks: the usual cap
