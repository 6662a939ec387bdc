"""Runs as users see them: a closed output pipe, a killed engine, cancel, waiting for a lock.

A viewer going away must not change the dataflow, a dead engine's record must not
stay ``running`` forever, and a run can be cancelled from another command.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from east import IntegerType

import e3
from e3.core import runs
from e3.store.repository import open_repository
from tests_support import DEADLINE, E3_BIN, background, export_to, run_cli, wait_for


def _slow_chain(tmp_path: Path, n: int = 6, pause: float = 0.3) -> Path:
    """A repository whose workspace ``ws`` runs ``n`` shell tasks of ``pause`` s in a chain."""
    x = e3.input("x", IntegerType, default=1)
    prev = x
    for i in range(n):
        prev = e3.custom_task(
            f"t{i}", [prev], IntegerType, f"sleep {pause}; cp {{inputs[0]}} {{output}}"
        )
    pkg = e3.package("slow", "1.0.0", prev)
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    assert run_cli("package", "import", repo, export_to(pkg, tmp_path)).code == 0
    assert run_cli("workspace", "deploy", repo, "ws", "slow").code == 0
    return repo


def test_a_started_task_shows_through_a_pipe_while_it_runs(tmp_path: Path) -> None:
    """``e3 start | tee log``: each batch of lines is flushed, not held in the pipe's buffer."""
    repo = _slow_chain(tmp_path, n=1, pause=DEADLINE)
    with background("start", repo, "ws") as run:
        assert run.proc.stdout is not None
        fd = run.proc.stdout.fileno()
        os.set_blocking(fd, False)
        shown = bytearray()

        def started() -> bool:
            with contextlib.suppress(BlockingIOError):
                shown.extend(os.read(fd, 1 << 16))
            return b"[START] t0" in shown

        wait_for(started, "[START] t0 through the pipe", proc=run.proc)
        assert run.proc.poll() is None  # shown while the task still runs


def _log(repo: Path) -> list[dict[str, object]]:
    runs_: list[dict[str, object]] = json.loads(run_cli("log", repo, "ws", "--json").out)
    return runs_


def _pipe_to_head(repo: Path, *flags: str) -> tuple[int, str]:
    """``e3 start repo ws flags | head -3``; e3's own exit status and what head printed."""
    script = f"{E3_BIN} start {repo} ws {' '.join(flags)} | head -3; exit ${{PIPESTATUS[0]}}"
    proc = subprocess.run(
        ["bash", "-c", script], capture_output=True, timeout=DEADLINE * 2, text=True
    )
    return proc.returncode, proc.stdout


def test_closed_output_pipe_lets_the_run_finish_and_keeps_its_work(tmp_path: Path) -> None:
    repo = _slow_chain(tmp_path)
    code, shown = _pipe_to_head(repo)
    assert len(shown.splitlines()) == 3
    assert code == 0  # the run completed although nobody read its output
    (record,) = _log(repo)
    assert record["status"] == "completed"
    assert record["summary"]["completed"] == 6  # type: ignore[index]
    again = run_cli("start", repo, "ws")
    assert "Executed: 0" in again.out and "Cached:   6" in again.out


def test_closed_json_pipe_keeps_finished_results(tmp_path: Path) -> None:
    repo = _slow_chain(tmp_path)
    code, shown = _pipe_to_head(repo, "--json")
    assert code == 0 and len(shown.splitlines()) == 3
    assert [r["status"] for r in _log(repo)] == ["completed"]
    assert "Executed: 0" in run_cli("start", repo, "ws").out


def test_killed_engine_run_shows_as_interrupted_and_the_next_start_closes_it(
    tmp_path: Path,
) -> None:
    repo = _slow_chain(tmp_path, pause=1.0)
    with background("start", repo, "ws") as run:
        wait_for(lambda: "[START] t0" in _peek(repo), "the first task to start", proc=run.proc)
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(DEADLINE)
    (dead,) = _log(repo)
    assert dead["status"] == "interrupted"  # not "running" forever
    text = run_cli("log", repo, "ws").out
    assert "interrupted" in text
    assert run_cli("start", repo, "ws").code == 0
    store = open_repository(repo)
    record = runs.read_run(store, "ws", str(dead["run_id"]))
    assert record is not None and record.status == "interrupted"  # closed on disk too
    assert record.completed_at is not None
    assert [r["status"] for r in _log(repo)] == ["interrupted", "completed"]


def _peek(repo: Path) -> str:
    """What the newest run's event log says so far, as ``[START] t`` lines."""
    store = open_repository(repo)
    history = runs.list_runs(store, "ws")
    if not history:
        return ""
    reader = runs.EventReader(runs.events_path(store, "ws", history[-1].run_id))
    return "\n".join(f"[START] {e.task}" for e in reader.poll() if e.kind == "task_started")


def test_cancel_command_stops_a_run_of_another_process(tmp_path: Path) -> None:
    repo = _slow_chain(tmp_path, pause=2.0)
    with background("start", repo, "ws") as run:
        wait_for(lambda: "[START] t0" in _peek(repo), "the first task to start", proc=run.proc)
        cancel = run_cli("cancel", repo, "ws")
        assert cancel.code == 0, cancel.err
        assert "cancelled" in cancel.out
        result = run.finish()
    assert result.code == 130
    assert "Aborted." in result.out
    assert "Not started (the run was cancelled): " in result.out
    assert [r["status"] for r in _log(repo)] == ["cancelled"]
    nothing = run_cli("cancel", repo, "ws")
    assert nothing.code == 4 and "no dataflow is running" in nothing.err


def test_sigterm_cancels_the_run_cleanly(tmp_path: Path) -> None:
    repo = _slow_chain(tmp_path, pause=2.0)
    with background("start", repo, "ws") as run:
        wait_for(lambda: "[START] t0" in _peek(repo), "the first task to start", proc=run.proc)
        os.kill(run.pid, signal.SIGTERM)
        result = run.finish()
    assert result.code == 130, result.err
    assert [r["status"] for r in _log(repo)] == ["cancelled"]


def test_start_waits_for_a_running_dataflow_when_asked(tmp_path: Path) -> None:
    repo = _slow_chain(tmp_path, n=2, pause=0.5)
    with background("start", repo, "ws") as first:
        wait_for(lambda: "[START] t0" in _peek(repo), "the first run to start", proc=first.proc)
        refused = run_cli("start", repo, "ws")
        assert refused.code == 4 and "locked" in refused.err
        waited = run_cli("start", repo, "ws", "--wait", str(DEADLINE))
        assert waited.code == 0, waited.err
        assert first.finish().code == 0
    assert [r["status"] for r in _log(repo)] == ["completed", "completed"]


def test_a_run_that_ends_between_reading_it_and_looking_at_its_lock_is_not_interrupted(
    tmp_path: Path,
) -> None:
    """An engine writes its final record, then lets go of the lock. A reader that read the
    record as ``running`` just before, and found the lock free just after, used to call the
    run interrupted (``e3 cancel`` printed "interrupted" for a run it had cancelled)."""
    repo_path = _slow_chain(tmp_path, n=1, pause=0.0)
    assert run_cli("start", repo_path, "ws").code == 0
    store = open_repository(repo_path)
    (done,) = runs.list_runs(store, "ws")
    assert done.status == "completed"
    read_while_running = replace(done, status="running", completed_at=None)
    (seen,) = runs._with_liveness(store, "ws", [read_while_running])
    assert seen.status == "completed"
    runs.write_run(store, read_while_running)  # an engine that died while running
    (dead,) = runs._with_liveness(store, "ws", [read_while_running])
    assert dead.status == "interrupted"


def test_the_newest_runs_are_read_without_decoding_the_older_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run record holds every task's execution: `e3 logs`, `e3 cancel` and `e3 log -n`
    # decoded the whole history to look at its newest runs.
    repo_path = _slow_chain(tmp_path, n=2, pause=0)
    for _ in range(3):
        assert run_cli("start", repo_path, "ws").code == 0
    repo = open_repository(repo_path)
    every = runs.list_runs(repo, "ws")
    decoded: list[str] = []
    real = runs.read_run
    monkeypatch.setattr(
        runs, "read_run", lambda r, ws, run_id: decoded.append(run_id) or real(r, ws, run_id)
    )
    newest = runs.list_runs(repo, "ws", last=2)
    assert [r.run_id for r in newest] == [r.run_id for r in every[-2:]]
    assert decoded == [r.run_id for r in every[-2:]]


def test_brief_records_are_cached_per_record_file_and_dropped_with_the_run(tmp_path: Path) -> None:
    # `e3 log` lists twenty runs; a 10,000-task record took 0.15 s to decode, each time.
    repo_path = _slow_chain(tmp_path, n=2, pause=0)
    for _ in range(2):
        assert run_cli("start", repo_path, "ws").code == 0
    repo = open_repository(repo_path)
    cache = repo_path / "cache" / "runs" / "ws"
    assert len(list(cache.iterdir())) == 2  # written by each run as it ended
    first, second = runs.list_runs(repo, "ws")
    briefs = runs.list_runs(repo, "ws", brief=True)
    assert [b.run_id for b in briefs] == [first.run_id, second.run_id]
    assert briefs[0] == replace(first, input_versions={}, output_versions=None, task_executions={})
    entries = sorted(cache.iterdir())
    assert [e.name.split("-")[:5] for e in entries] == [
        r.run_id.split("-") for r in (first, second)
    ]
    # The cached form is what is read (a changed entry shows)...
    entries[0].write_bytes(
        runs.run_record.encode(replace(briefs[0], package_ref="from-the-cache@1"))
    )
    assert runs.read_brief(repo, "ws", first.run_id).package_ref == "from-the-cache@1"  # type: ignore[union-attr]
    # ...only while the record is the file it was made from: a rewritten record is read anew.
    runs.write_run(repo, replace(first, package_ref="rewritten@2"))
    assert runs.read_brief(repo, "ws", first.run_id).package_ref == "rewritten@2"  # type: ignore[union-attr]
    # A damaged entry is decoded past, never believed.
    for entry in cache.iterdir():
        entry.write_bytes(b"not beast2")
    assert runs.list_runs(repo, "ws", brief=True)[1] == briefs[1]
    # gc dropping a run drops its cached forms too.
    assert run_cli("repo", "gc", repo_path, "--keep-runs", "1", "--min-age", "0").code == 0
    assert [r.run_id for r in runs.list_runs(repo, "ws")] == [second.run_id]
    assert not [e for e in cache.iterdir() if e.name.startswith(first.run_id)]


def test_an_event_log_reads_the_same_whole_or_damaged_line_by_line(tmp_path: Path) -> None:
    # Lines are parsed in one go (a 10,000-task log line by line took 0.17 s); a damaged
    # line must cost only itself, as before.
    repo_path = _slow_chain(tmp_path, n=3, pause=0)
    assert run_cli("start", repo_path, "ws").code == 0
    store = open_repository(repo_path)
    (run,) = runs.list_runs(store, "ws")
    log = runs.events_path(store, "ws", run.run_id)
    whole = runs.EventReader(log).poll()
    assert [e.seq for e in whole] == sorted(e.seq for e in whole) and len(whole) >= 8
    lines = log.read_bytes().split(b"\n")
    damaged = [
        *lines[:2],
        b'{"event":"task_started",',
        b"",
        b"[1, 2]",
        b'{"event":"nope"}',
        *lines[2:],
    ]
    log.write_bytes(b"\n".join(damaged))
    assert runs.EventReader(log).poll() == whole
    log.write_bytes(b"\n".join(lines)[:-30])  # a torn tail waits for its newline
    reader = runs.EventReader(log)
    assert reader.poll() == whole[:-1]
    log.write_bytes(b"\n".join(lines))
    assert reader.poll() == whole[-1:]
