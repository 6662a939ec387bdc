"""Real task processes: cancel, engine death and resume, timeouts, logs, single-flight,
worker crashes and workspace locks.

Every test builds its own repository in ``tmp_path`` with the CLI and runs ``e3 start`` as
a real subprocess (the installed console script), so signals, process groups, the guardian
and the warm worker pool are the real ones. Nothing sleeps in the hope that something
happened: tests poll for a condition with a bounded deadline; only task workloads sleep.

Orphans: a task's background child, or a task shell whose engine was SIGKILLed, is
re-parented. Where PID 1 does not reap (containers without an init), such processes stay
zombies forever and look alive to ``kill(pid, 0)``. The module therefore makes the test
process a child subreaper (``PR_SET_CHILD_SUBREAPER``, as an init would be) and reaps the
pids it checks, so "the process is gone" means the same thing on every machine.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from east import East, IntegerType, StringType

import e3
from e3.codec import beast2
from e3.core import executions, workspaces
from e3.dataflow.loader import load_graph
from e3.dataflow.scheduler import run_sync
from e3.model.runs import StartOptions
from e3.sdk import Package
from e3.store.repository import open_repository
from tests_support import (
    DEADLINE,
    E3_BIN,
    CliResult,
    E3Process,
    assert_gone,
    background,
    export_to,
    kill_leftovers,
    run_cli,
    run_e3,
    shell_package,
    wait_for,
)

_PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture(autouse=True, scope="module")
def _subreaper() -> Iterator[None]:
    """Adopt orphaned descendants (see the module docstring)."""
    libc = ctypes.CDLL(None, use_errno=True)
    ok = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        if ok:
            libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
            _reap_adopted_zombies()


def _reap_adopted_zombies() -> None:
    """Reap exited orphans this process adopted (guardians and workers of ended engines)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(stat.parent.name), os.WNOHANG)


# ── helpers ──────────────────────────────────────────────────────────────────


def setup_repo(tmp_path: Path, pkg: Package, names: tuple[str, ...] = ("ws",)) -> Path:
    """A repository in ``tmp_path/repo`` with ``pkg`` imported and deployed."""
    repo = tmp_path / "repo"
    for args in (
        ("repo", "create", repo),
        ("package", "import", repo, export_to(pkg, tmp_path)),
        *(("workspace", "deploy", repo, ws, pkg.name) for ws in names),
    ):
        r = run_cli(*args)
        assert r.code == 0, f"e3 {args}: {r.err}"
    return repo


#: Tasks run in an emptied scratch directory, so the test tasks leave their markers
#: (pid files) in MARKERS/<execution id>/ instead: one directory per test process,
#: removed when it exits.
MARKERS = Path(tempfile.mkdtemp(prefix="e3-test-markers-"))
atexit.register(shutil.rmtree, MARKERS, True)


def find_files(repo: Path, name: str) -> list[Path]:
    """Files called ``name`` of this repository's executions: e3's own files in
    ``executions/<t>/<i>/<id>/``, or a task's markers in ``MARKERS/<id>/``."""
    found = []
    for d in (repo / "executions").glob("*/*/*"):
        for candidate in (d / name, MARKERS / d.name / name):
            if candidate.exists():
                found.append(candidate)
    return sorted(found)


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") and text.strip().isdigit() else None


def execution_of(repo: Path, pid_file: Path) -> tuple[str, str, str]:
    """(task hash, inputs hash, execution id) of the execution a file belongs to."""
    d = pid_file.parent
    if d.parent == MARKERS:
        (d,) = (repo / "executions").glob(f"*/*/{d.name}")
    return d.parent.parent.name, d.parent.name, d.name


def get_value(repo: Path, path: str) -> str:
    r = run_cli("get", repo, path)
    assert r.code == 0, r.err
    return r.out.strip()


def task_hash(repo: Path, task: str, ws: str = "ws") -> str:
    graph = load_graph(open_repository(repo), workspaces.open_deployed(open_repository(repo), ws))
    return graph.tasks[graph.by_name[task]].hash


def q(path: Path) -> str:
    """A path for a shell command template (no braces allowed in templates)."""
    text = shlex.quote(str(path))
    assert "{" not in text and "}" not in text
    return text


# A task that starts a background child, records both pids in its cwd (the execution
# directory) and then waits far longer than any test: it only ends by being killed.
STUCK = (
    f'd={MARKERS}/$E3_EXECUTION_ID; mkdir -p "$d"; echo $$ > "$d/shell.pid"; '
    'sleep 60 & echo $! > "$d/child.pid"; sleep 60'
)


def wait_for_running_status(repo: Path, execution: tuple[str, str, str], pid: int) -> None:
    """Wait until an execution's status says ``running`` with ``pid`` (written after 0.2 s)."""
    r = open_repository(repo)

    def running() -> bool:
        st = executions.read_status(r, *execution)
        return st is not None and st.state == "running" and st.pid == pid

    wait_for(running, f"a running status with pid {pid}")


def proc_state(pid: int) -> str | None:
    """The state letter of ``/proc/<pid>/stat`` (``Z``: zombie), ``None`` if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def wait_for_stuck_task(repo: Path, e3proc: E3Process) -> tuple[int, int, tuple[str, str, str]]:
    """Wait until a STUCK task has written both pid files; (shell pid, child pid, execution)."""
    child_file = wait_for(
        lambda: find_files(repo, "child.pid"), "the task's child.pid", proc=e3proc.proc
    )[0]
    child = wait_for(lambda: read_pid(child_file), "child.pid to be written")
    shell = wait_for(lambda: read_pid(child_file.with_name("shell.pid")), "shell.pid")
    return shell, child, execution_of(repo, child_file)


# ── 1. cancel ────────────────────────────────────────────────────────────────


def test_sigint_cancels_the_run_and_kills_the_task_process_group(tmp_path: Path) -> None:
    repo = setup_repo(tmp_path, shell_package(f"{STUCK}; cp {{inputs[0]}} {{output}}"))
    with background("start", repo, "ws") as run:
        shell, child, (th, ih, eid) = wait_for_stuck_task(repo, run)
        wait_for_running_status(repo, (th, ih, eid), shell)
        try:
            run.proc.send_signal(signal.SIGINT)
            res = run.finish()
            assert res.code == 130, res.out + res.err
            assert "Aborted." in res.out
            assert "Traceback" not in res.err
            assert_gone(shell, child)
        finally:
            kill_leftovers(shell, child)

    runs = json.loads(run_cli("log", repo, "ws", "--json").out)
    assert [r["status"] for r in runs] == ["cancelled"]
    st = executions.read_status(open_repository(repo), th, ih, eid)
    assert st is not None
    assert (st.state, st.message) == ("error", "cancelled")
    # Nothing was published for the cancelled task.
    assert not (repo / "executions" / th / ih / eid / executions.OUTPUT_FILE).exists()


# ── 2. SIGKILL of the engine, then resume ────────────────────────────────────


def _chain_package(flag: Path) -> Package:
    x = e3.input("x", IntegerType, default=5)
    t1 = e3.custom_task("t1", [x], IntegerType, "cp {inputs[0]} {output}")
    t2 = e3.custom_task("t2", [t1], IntegerType, "cp {inputs[0]} {output}")
    t3 = e3.custom_task(
        "t3",
        [t2],
        IntegerType,
        f"if [ -f {q(flag)} ]; then cp {{inputs[0]}} {{output}}; else {STUCK}; fi",
    )
    return e3.package("chain", "1.0.0", t3)


def test_sigkill_of_the_engine_kills_tasks_and_the_next_run_resumes(tmp_path: Path) -> None:
    flag = tmp_path / "fast"
    repo = setup_repo(tmp_path, _chain_package(flag))
    with background("start", repo, "ws") as run:
        shell, child, (th, ih, eid) = wait_for_stuck_task(repo, run)
        wait_for_running_status(repo, (th, ih, eid), shell)
        # t1 and t2 are done; their cache records are published in a batch a moment later
        # (PUBLISH_INTERVAL). Kill the engine once they are: their results must survive.
        wait_for(
            lambda: len(find_files(repo, executions.OUTPUT_FILE)) == 2,
            "t1's and t2's results to be published",
            proc=run.proc,
        )
        try:
            run.proc.send_signal(signal.SIGKILL)
            assert run.finish().code == -signal.SIGKILL
            # Nobody is left to kill the task but the guardian.
            assert_gone(shell, child)
        finally:
            kill_leftovers(shell, child)

    summary = run_cli("logs", repo, "ws").out.splitlines()
    assert "t3  [died] (1 execution(s))" in summary

    flag.touch()
    res = run_e3("start", repo, "ws", timeout=DEADLINE)
    assert res.code == 0, res.out + res.err
    lines = res.out.splitlines()
    assert "  [CACHED] t1" in lines
    assert "  [CACHED] t2" in lines
    assert "  [START] t3" in lines
    assert not any(line.startswith(("  [START] t1", "  [START] t2")) for line in lines)
    assert get_value(repo, "ws.tasks.t3.output") == "5"

    attempts = {
        ex.execution_id: ex.status for ex in executions.all_for_task(open_repository(repo), th)
    }
    assert len(attempts) == 2
    first = attempts[eid]
    assert first is not None and first.state == "error"
    assert "interrupted" in (first.message or "")
    (second,) = (st for k, st in attempts.items() if k != eid)
    assert second is not None and second.state == "success"


def test_a_killed_but_unreaped_task_process_is_not_taken_for_a_live_one(tmp_path: Path) -> None:
    """As test 2, but the killed task shell stays a zombie while e3 looks at it.

    Its parent (the engine) is dead, so it was re-parented to this process (a subreaper),
    which does not reap it until the end: exactly what happens for good under a PID 1 that
    does not reap orphans (a container without an init, like the one these tests were
    written in). A zombie has exited; e3 must not treat it as a running task.
    """
    flag = tmp_path / "fast"
    repo = setup_repo(tmp_path, _chain_package(flag))
    with background("start", repo, "ws") as run:
        shell, child, (th, ih, eid) = wait_for_stuck_task(repo, run)
        wait_for_running_status(repo, (th, ih, eid), shell)
        try:
            run.proc.send_signal(signal.SIGKILL)
            run.finish()
            wait_for(lambda: proc_state(shell) == "Z", "the killed task shell to be a zombie")
            summary = run_cli("logs", repo, "ws").out.splitlines()
            flag.touch()
            res = run_e3("start", repo, "ws", timeout=DEADLINE)
        finally:
            kill_leftovers(shell, child)
            assert_gone(shell, child)
    assert res.code == 0, res.out + res.err
    first = executions.read_status(open_repository(repo), th, ih, eid)
    assert first is not None
    assert (first.state, summary[-1]) == ("error", "t3  [died] (1 execution(s))")
    assert "interrupted" in (first.message or "")


# ── 3. timeout ───────────────────────────────────────────────────────────────


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    repo = setup_repo(tmp_path, shell_package(f"{STUCK}; cp {{inputs[0]}} {{output}}"))
    t0 = time.monotonic()
    res = run_e3("start", repo, "ws", "--timeout", "1", timeout=DEADLINE)
    elapsed = time.monotonic() - t0
    pid_files = find_files(repo, "child.pid")
    assert len(pid_files) == 1
    shell = read_pid(pid_files[0].with_name("shell.pid"))
    child = read_pid(pid_files[0])
    assert shell is not None and child is not None
    try:
        assert res.code == 1, res.out + res.err
        assert "Traceback" not in res.err
        assert "[ERR] t: timed out after 1 s" in res.out
        assert "Failed tasks:" in res.out
        assert elapsed < 20
        assert_gone(shell, child)
    finally:
        kill_leftovers(shell, child)
    th, ih, eid = execution_of(repo, pid_files[0])
    st = executions.read_status(open_repository(repo), th, ih, eid)
    assert st is not None and st.state == "error" and "timed out" in (st.message or "")


# ── 4. log capture, cap and e3 logs ─────────────────────────────────────────


def test_logs_are_captured_per_stream_and_shown_by_e3_logs(tmp_path: Path) -> None:
    repo = setup_repo(
        tmp_path,
        shell_package(
            "echo out-one; echo err-one >&2; echo out-two; echo err-two >&2; "
            "cp {inputs[0]} {output}"
        ),
    )
    res = run_e3("start", repo, "ws", timeout=DEADLINE)
    assert res.code == 0, res.out + res.err

    logs = run_cli("logs", repo, "ws.t")
    assert logs.code == 0, logs.err
    lines = logs.out.splitlines()
    assert lines[0] == "Task: t"
    assert lines[1].startswith("Execution: ")
    assert lines[2:] == [
        "=== STDOUT ===",
        "out-one",
        "out-two",
        "=== STDERR ===",
        "err-one",
        "err-two",
    ]
    only_err = run_cli("logs", repo, "ws.t", "--stream", "stderr")
    assert only_err.out.splitlines()[2:] == ["=== STDERR ===", "err-one", "err-two"]

    summary = run_cli("logs", repo, "ws")
    assert summary.code == 0, summary.err
    assert summary.out.splitlines() == ["t  [success] (1 execution(s))"]


def test_log_limit_truncates_and_says_so(tmp_path: Path) -> None:
    size = 3_000_000
    repo = setup_repo(
        tmp_path,
        shell_package(
            f"head -c {size} /dev/zero | tr '\\0' a; echo small-stderr >&2; "
            "cp {inputs[0]} {output}"
        ),
    )
    out = run_sync(open_repository(repo), "ws", StartOptions(log_limit=1000))
    assert out.status == "completed"
    (stdout_file,) = find_files(repo, executions.STDOUT_FILE)
    data = stdout_file.read_bytes()
    assert data[:1000] == b"a" * 1000
    rest = data[1000:].decode()
    assert rest.startswith("\n") and rest.endswith("\n")
    (marker,) = rest.strip("\n").splitlines()
    assert "log truncated" in marker
    assert str(size - 1000) in marker
    # A stream under the cap is untouched.
    assert stdout_file.with_name(executions.STDERR_FILE).read_bytes() == b"small-stderr\n"


# ── 5. e3 logs --follow ──────────────────────────────────────────────────────


def test_logs_follow_streams_until_the_task_ends(tmp_path: Path) -> None:
    lines = [f"line{i}" for i in range(1, 6)]
    command = "; sleep 0.3; ".join(f"echo {line}" for line in lines)
    repo = setup_repo(tmp_path, shell_package(f"{command}; cp {{inputs[0]}} {{output}}"))
    with background("start", repo, "ws") as run:

        def started() -> bool:
            r = run_cli("logs", repo, "ws.t")
            assert r.code in (0, 3), r.out + r.err
            if r.code == 3:
                assert "has not run yet" in r.err
            return r.code == 0 and "line1" in r.out

        wait_for(started, "the task to start logging", proc=run.proc)
        with background("logs", repo, "ws.t", "--follow") as follow:
            followed = follow.finish()
        assert run.finish().code == 0
    assert followed.code == 0, followed.err
    body = followed.out.splitlines()
    assert body[0] == "Task: t"
    assert [line for line in body if line.startswith("line")] == lines


def test_logs_follow_waits_for_a_task_that_has_not_printed_yet(tmp_path: Path) -> None:
    gate = tmp_path / "go"
    repo = setup_repo(
        tmp_path,
        shell_package(
            f"while [ ! -f {q(gate)} ]; do sleep 0.02; done; echo late-line; "
            "cp {inputs[0]} {output}"
        ),
    )
    with background("start", repo, "ws") as run:
        wait_for(
            lambda: find_files(repo, executions.STATUS_FILE),
            "the task's running status",
            proc=run.proc,
        )
        follow = E3Process("logs", repo, "ws.t", "--follow")
        try:
            # The follower must still be waiting: the task has not printed anything yet. (A
            # bounded wait for something that must not happen; it returns at once if it does.)
            early_exit = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                early_exit = follow.proc.wait(timeout=1.5)
            gate.touch()
            followed = follow.finish()
        finally:
            follow.kill()
            gate.touch()
        assert run.finish().code == 0
    assert early_exit is None, f"follow exited early: {followed.out!r}"
    assert "late-line" in followed.out


def test_logs_follow_prints_output_written_just_before_the_task_exits(tmp_path: Path) -> None:
    """Between the task's exit and the final copy of its logs the engine stores the output.

    A large output (here a 100-million-character String, which takes the engine about a
    second to canonicalise) makes that window wide enough for the follower to look inside.
    """
    gate = tmp_path / "go"
    big = tmp_path / "big.beast2"
    big.write_bytes(beast2.encode("a" * 100_000_000, StringType))
    x = e3.input("x", IntegerType, default=5)
    task = e3.custom_task(
        "t",
        [x],
        StringType,
        f"echo first; while [ ! -f {q(gate)} ]; do sleep 0.02; done; "
        f"cp {q(big)} {{output}}; echo last",
    )
    repo = setup_repo(tmp_path, e3.package("bigout", "1.0.0", task))
    follow_out = tmp_path / "follow.out"
    with background("start", repo, "ws") as run:
        wait_for(
            lambda: "first" in run_cli("logs", repo, "ws.t").out,
            "the task's first line",
            proc=run.proc,
        )
        with open(follow_out, "wb") as sink:
            follow = subprocess.Popen(
                [str(E3_BIN), "logs", str(repo), "ws.t", "--follow"], stdout=sink
            )
        try:
            wait_for(lambda: b"first" in follow_out.read_bytes(), "the follower to catch up")
            gate.touch()
            assert follow.wait(timeout=DEADLINE) == 0
        finally:
            gate.touch()
            if follow.poll() is None:
                follow.kill()
                follow.wait()
        assert run.finish().code == 0
    assert "last" in run_cli("logs", repo, "ws.t").out  # the log itself is complete
    assert follow_out.read_text().splitlines()[2:] == ["first", "last"]


# ── 6. single-flight across workspaces ───────────────────────────────────────


def test_same_task_and_inputs_run_once_across_two_workspaces(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    repo = setup_repo(
        tmp_path,
        shell_package(f"echo ran >> {q(counter)}; sleep 1; cp {{inputs[0]}} {{output}}"),
        names=("a", "b"),
    )
    with background("start", repo, "a") as a, background("start", repo, "b") as b:
        ra, rb = a.finish(), b.finish()
    assert ra.code == 0, ra.out + ra.err
    assert rb.code == 0, rb.out + rb.err
    assert get_value(repo, "a.tasks.t.output") == get_value(repo, "b.tasks.t.output") == "5"
    assert counter.read_text() == "ran\n"
    cached = ["  [CACHED] t" in r.out.splitlines() for r in (ra, rb)]
    assert sorted(cached) == [False, True], (ra.out, rb.out)


# ── 7. worker crash isolation ────────────────────────────────────────────────

_CRASH_PLATFORM = '''\
"""A platform package whose one function kills the process running it."""

import os
import resource
import sys

from east.runtime.platform import platform_function, platform_functions
from east.types.types import IntegerType


@platform_function(name="crash_now", inputs=[IntegerType], output=IntegerType)
def crash_now(x: int) -> int:
    # Say where it ran (in a marker directory named after the execution), then die
    # without a core file.
    marker = os.path.join(os.environ["E3_MARKERS"], os.environ["E3_EXECUTION_ID"])
    os.makedirs(marker, exist_ok=True)
    with open(os.path.join(marker, "crashed-in"), "w") as f:
        f.write("warm" if "e3.runners.east_worker" in sys.modules else "process")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.abort()


platform = platform_functions(__name__)
'''

CRASHERS = ("crash_a", "crash_b")


def _crash_package() -> Package:
    crash_now = East.platform("crash_now", [IntegerType], IntegerType)
    runner = ["east-py", "run", "-p", "e3-crash-platform"]
    x = e3.input("x", IntegerType, default=5)
    crash_a = e3.task(
        "crash_a",
        [x],
        East.function([IntegerType], IntegerType, lambda b, v: crash_now(v)),
        runner=runner,
    )
    crash_b = e3.task(
        "crash_b",
        [x],
        East.function([IntegerType], IntegerType, lambda b, v: crash_now(v + 1)),
        runner=runner,
    )
    healthy = e3.task("healthy", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 3))
    return e3.package("crashy", "1.0.0", crash_a, crash_b, healthy)


def _fail_lines(res: CliResult) -> dict[str, str]:
    """Task name -> what its ``[FAIL]``/``[ERR]`` progress line says about the failure."""
    failures: dict[str, str] = {}
    for line in res.out.splitlines():
        parts = line.split(maxsplit=2)
        if parts[:1] == ["[FAIL]"]:
            failures[parts[1]] = line.rsplit("(", 1)[1].rstrip(")")
        elif parts[:1] == ["[ERR]"]:
            failures[parts[1].rstrip(":")] = parts[2]
    return failures


def _crash_attempts(repo: Path) -> dict[str, list[tuple[str, int | None, str]]]:
    """Crashing task -> (state, exit code, where it ran) of each attempt, oldest first."""
    r = open_repository(repo)
    out: dict[str, list[tuple[str, int | None, str]]] = {}
    for name in CRASHERS:
        attempts = sorted(
            executions.all_for_task(r, task_hash(repo, name)), key=lambda e: e.execution_id
        )
        out[name] = [
            (
                ex.status.state if ex.status else "?",
                ex.status.exit_code if ex.status else None,
                (MARKERS / ex.execution_id / "crashed-in").read_text(),
            )
            for ex in attempts
        ]
    return out


@pytest.mark.parametrize("isolation", ["warm", "process"])
def test_a_crashing_worker_fails_only_its_task(tmp_path: Path, isolation: str) -> None:
    plat = tmp_path / "plat" / "e3_crash_platform"
    plat.mkdir(parents=True)
    (plat / "__init__.py").write_text(_CRASH_PLATFORM)
    env = {
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(plat.parent), os.environ.get("PYTHONPATH", "")) if p
        ),
        "E3_MARKERS": str(MARKERS),
    }
    repo = setup_repo(tmp_path, _crash_package())
    aborted = ("failed", 128 + signal.SIGABRT)

    with background("start", repo, "ws", "--keep-going", "--isolation", isolation, env=env) as run:
        res = run.finish()
    assert res.code == 1, res.out + res.err
    assert "Traceback" not in res.err
    # Both modes report a crash the same way: the exit code of a process killed by SIGABRT.
    assert _fail_lines(res) == {"crash_a": "exit code 134", "crash_b": "exit code 134"}
    assert get_value(repo, "ws.tasks.healthy.output") == "15"
    assert _crash_attempts(repo) == {name: [(*aborted, isolation)] for name in CRASHERS}

    # Again, warm, one worker at a time: each crash takes the pool's only worker down, so
    # the pool must replace it for the next task (one that lost count would hang here).
    for extra in ((), ("--force",)):
        with background(
            "start", repo, "ws", "--keep-going", "--concurrency", "1", *extra, env=env
        ) as again:
            res2 = again.finish()
        assert res2.code == 1, res2.out + res2.err
        assert "Traceback" not in res2.err
        assert _fail_lines(res2) == {"crash_a": "exit code 134", "crash_b": "exit code 134"}
        healthy = "[DONE] healthy" if extra else "[CACHED] healthy"
        assert any(line.strip().startswith(healthy) for line in res2.out.splitlines()), res2.out
    assert get_value(repo, "ws.tasks.healthy.output") == "15"
    assert _crash_attempts(repo) == {
        name: [(*aborted, isolation), (*aborted, "warm"), (*aborted, "warm")] for name in CRASHERS
    }


# ── 8. one dataflow per workspace ────────────────────────────────────────────


def test_a_second_start_on_a_running_workspace_is_refused(tmp_path: Path) -> None:
    gate, started = tmp_path / "go", tmp_path / "started"
    repo = setup_repo(
        tmp_path,
        shell_package(
            f"touch {q(started)}; while [ ! -f {q(gate)} ]; do sleep 0.02; done; "
            "cp {inputs[0]} {output}"
        ),
    )
    with background("start", repo, "ws") as run:
        try:
            wait_for(started.exists, "the task to start", proc=run.proc)

            second = run_e3("start", repo, "ws", timeout=DEADLINE)
            assert second.code == 4, second.out + second.err
            assert len(second.err_lines) == 1, second.err
            assert second.err_lines[0].startswith("Error: ")
            assert f"pid {run.pid}" in second.err_lines[0]

            deploy = run_e3("workspace", "deploy", repo, "ws", "shellpkg", timeout=DEADLINE)
            assert deploy.code == 4, deploy.out + deploy.err
            assert len(deploy.err_lines) == 1, deploy.err
            assert f"pid {run.pid}" in deploy.err_lines[0]

            value = tmp_path / "x.east"
            value.write_text("7\n")
            setx = run_e3("set", repo, "ws.inputs.x", value, timeout=DEADLINE)
            assert setx.code == 0, setx.out + setx.err
        finally:
            gate.touch()
        res = run.finish()
    assert res.code == 0, res.out + res.err
    assert get_value(repo, "ws.inputs.x") == "7"
    # The running dataflow noticed the new input and recomputed with it.
    assert get_value(repo, "ws.tasks.t.output") == "7"
