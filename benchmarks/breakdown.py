"""Where one task's cost goes: engine CPU by stage, worker CPU, system calls per task.

The dataflow is a chain of N trivial East tasks (``examples/fanout.py``), the
shape where per-task latency is everything. Two kinds of measurement:

* **CPU by stage.** The run is executed in a fresh process
  (``python -m benchmarks.breakdown probe``) with the engine's event loop on
  that process's main thread, first under ``cProfile`` with a thread-CPU clock
  (``time.thread_time``) to split it into stages (:data:`STAGES`: the inclusive
  time of each stage's functions, minus the stages nested in them), then,
  on another fresh repository, without the profiler, to measure the loop
  thread's real CPU (``time.thread_time``). The stages are scaled to add up to
  that real figure: the profiler's own overhead is taken out in proportion.
  The publisher thread (durability batches) is the process's CPU
  (``getrusage``) minus the loop thread's; the warm East worker's is
  ``RUSAGE_CHILDREN`` once the workers have been stopped.
* **System calls.** ``e3 start`` through the CLI, as a user runs it, under
  ``strace -f``; every thread and child process is counted, by role.

Each row is per task: (total of the run) / N, so fixed costs (start-up, the
final record) are spread over the N tasks; the ``fixed`` line gives them for a
run of one task. Run it against another checkout's virtual environment to get
a baseline: ``PYTHONPATH=<this checkout> <other>/.venv/bin/python -m benchmarks
--only breakdown`` (the stage table lists functions of both versions).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.e3cli import build_package, fanout_source, fresh_workspace
from benchmarks.harness import E3, env, table

#: Stage → functions, as (file name, function name). Names of the engine before and
#: after the issue-18 changes are both listed; a function that does not exist is 0.
STAGES: dict[str, list[tuple[str, str]]] = {
    "planning": [
        ("plan.py", "pop_ready"),
        ("plan.py", "launch"),
        ("plan.py", "complete"),
        ("plan.py", "fail"),
        ("plan.py", "finished"),
        ("plan.py", "drain_settled"),
        ("drive.py", "_report_settled"),
    ],
    "cache lookup": [
        ("executions.py", "cached_output"),
        ("executions.py", "lookup"),
    ],
    "single-flight lock, attempt id": [
        ("flights.py", "lock"),
        ("flights.py", "try_acquire"),
        ("flights.py", "release"),
        ("executions.py", "mark_interrupted"),
        ("executions.py", "new_attempt"),
    ],
    "runner round trip (engine side)": [
        ("execute.py", "_launch"),
        ("execute.py", "copy_logs"),
        ("east_warm.py", "run"),
        ("east_warm.py", "_on_readable"),
        ("slots.py", "clean"),
    ],
    "output: canonicalise, hash": [
        ("beast2.py", "canonicalize"),
        ("hashing.py", "object_hash"),
        ("hashing.py", "inputs_hash"),
    ],
    "writes: object, output ref": [
        ("objects.py", "put"),
        ("execute.py", "_store_output"),
        ("drive.py", "_settle_output"),
    ],
    "record publishing (loop thread)": [
        ("execution.py", "encode"),
        ("publish.py", "add"),
        ("publish.py", "flush"),
        ("publish.py", "due_in"),
    ],
    "event emission": [
        ("scheduler.py", "__call__"),
        ("runs.py", "flush"),
    ],
    "start and finish of the run": [
        ("prepare.py", "prepare_run"),
        ("drive.py", "__init__"),
        ("drive.py", "_finish"),
        ("execute.py", "close"),
    ],
}


# ── the probe: one run in this process ─────────────────────────────────────────


def _probe(repo_path: str, profile_out: str | None) -> dict[str, float]:
    """Run the workspace's dataflow here; CPU figures of the run (seconds)."""
    from e3.dataflow.scheduler import run_dataflow

    try:
        from e3.model.runs import StartOptions
        from e3.store.repository import open_repository
    except ImportError:  # a baseline from before the layers (8735596 and older)
        from e3.repository import open_repository  # type: ignore[import-not-found,no-redef]

        from e3.dataflow.scheduler import StartOptions  # type: ignore[attr-defined,no-redef]

    repo = open_repository(repo_path)
    prof = cProfile.Profile(time.thread_time) if profile_out else None

    async def main() -> object:
        if prof is not None:
            prof.enable()
        try:
            return await run_dataflow(repo, "ws", StartOptions())
        finally:
            if prof is not None:
                prof.disable()

    s0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, w0 = time.thread_time(), time.perf_counter()
    outcome = asyncio.run(main())
    loop_cpu, wall = time.thread_time() - t0, time.perf_counter() - w0
    s1 = resource.getrusage(resource.RUSAGE_SELF)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if prof is not None and profile_out is not None:
        prof.dump_stats(profile_out)
    counts = outcome.counts  # type: ignore[attr-defined]
    return {
        "tasks": counts.total,
        "executed": counts.executed,
        "wall": wall,
        "loop_cpu": loop_cpu,
        "process_cpu": (s1.ru_utime - s0.ru_utime) + (s1.ru_stime - s0.ru_stime),
        "children_cpu": (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime),
    }


def _run_probe(repo: Path, profile_out: Path | None = None) -> dict[str, float]:
    argv = [sys.executable, "-m", "benchmarks.breakdown", "probe", str(repo)]
    if profile_out is not None:
        argv.append(str(profile_out))
    os.sync()
    proc = subprocess.run(argv, env=env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"probe failed: {proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def stage_times(profile: Path) -> tuple[dict[str, float], float]:
    """Seconds per stage (a listed function's time goes to its own stage, not its caller's)."""
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    owner: dict[tuple[str, int, str], str] = {}
    for key in stats:
        file, _, name = key
        for stage, funcs in STAGES.items():
            if (os.path.basename(file), name) in funcs:
                owner[key] = stage
    out = dict.fromkeys(STAGES, 0.0)
    for key, stage in owner.items():
        out[stage] += stats[key][3]
        # Time of another listed function called from this one belongs to that one's stage.
        for callee in owner:
            under = stats[callee][4].get(key)
            if under is not None and callee != key:
                out[stage] -= under[3]
    out = {k: max(0.0, v) for k, v in out.items()}
    total = sum(v[2] for v in stats.values())
    return out, total


# ── through the CLI ───────────────────────────────────────────────────────────


def cli_cpu(repo: Path) -> tuple[float, float]:
    """CPU (user + system, with the children it waited for) and wall time of one ``e3 start``."""
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.Popen([E3, "start", str(repo), "ws"], env=env(), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"e3 start failed ({proc.returncode})")
    return usage.ru_utime + usage.ru_stime, wall


_CALL = re.compile(r"^(?:\[pid\s+\d+\]\s+)?([a-z_0-9]+)\(")


def syscalls(repo: Path) -> dict[str, Counter[str]]:
    """System calls of one ``e3 start``, by thread or process role."""
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "tr"
        os.sync()
        subprocess.run(
            ["strace", "-ff", "-qq", "-s", "300", "-o", str(prefix), E3, "start", str(repo), "ws"],
            env=env(),
            stdout=subprocess.DEVNULL,
            check=True,
        )
        by_role: dict[str, Counter[str]] = {}
        files = sorted(Path(tmp).glob("tr.*"), key=lambda p: int(p.suffix[1:]))
        for i, f in enumerate(files):
            text = f.read_text(errors="replace")
            calls: Counter[str] = Counter()
            for line in text.splitlines():
                m = _CALL.match(line)
                if m and "resumed>" not in line:
                    calls[m.group(1)] += 1
            role = _role(i, text)
            by_role.setdefault(role, Counter()).update(calls)
        return by_role


def _role(index: int, text: str) -> str:
    if index == 0:
        return "CLI main thread (start-up, prepare, printing)"
    if "execve(" in text:  # a child process (threads start without one)
        if "east_worker" in text:
            return "warm East worker"
        if "groups = set()" in text:
            return "guardian"
        return "task processes"
    if "epoll_wait(" in text:
        return "engine loop thread"
    if "syncfs(" in text:
        return "publisher thread"
    return "other threads"


# ── the suite ─────────────────────────────────────────────────────────────────


def run(*, quick: bool, sizes: str | None = None) -> None:
    n = int(sizes) if sizes and sizes.isdigit() else (20 if quick else 1000)
    with tempfile.TemporaryDirectory(prefix="e3-breakdown-") as tmpdir:
        tmp = Path(tmpdir)
        zip_path = build_package(tmp, f"chain{n}", fanout_source("chain", n))
        rows: dict[str, dict[str, float]] = {}
        for kind in ("first", "cached"):
            prof_repo = fresh_workspace(tmp, zip_path, f"chain{n}")
            real_repo = fresh_workspace(tmp, zip_path, f"chain{n}")
            if kind == "cached":
                _run_probe(prof_repo)
                _run_probe(real_repo)
            prof = tmp / f"{kind}.prof"
            _run_probe(prof_repo, prof)
            real = _run_probe(real_repo)
            stages, total = stage_times(prof)
            scale = real["loop_cpu"] / total if total else 0.0
            per = {k: v * scale / n * 1e6 for k, v in stages.items()}
            per["event loop, other"] = max(0.0, real["loop_cpu"] / n * 1e6 - sum(per.values()))
            per["= engine loop thread"] = real["loop_cpu"] / n * 1e6
            per["publisher thread"] = (real["process_cpu"] - real["loop_cpu"]) / n * 1e6
            per["warm East worker (and guardian)"] = real["children_cpu"] / n * 1e6
            per["wall per task (ms, not µs)"] = real["wall"] / n * 1e3
            rows[kind] = per
        cli_repo = fresh_workspace(tmp, zip_path, f"chain{n}")
        for kind in ("first", "cached"):
            cpu, wall = cli_cpu(cli_repo)
            rows[kind]["whole `e3 start` (CLI, engine, worker; wait4)"] = cpu / n * 1e6
            rows[kind]["its wall time per task (ms, not µs)"] = wall / n * 1e3
        table(
            [f"chain of {n:,}: CPU per task (µs)", "first run", "cached run"],
            [[k, f"{v:.0f}", f"{rows['cached'][k]:.0f}"] for k, v in rows["first"].items()],
        )
        print()
        if shutil.which("strace") is None:
            print("(strace not found: no system call counts)")
            return
        calls = {}
        repo = fresh_workspace(tmp, zip_path, f"chain{n}")
        calls["first"] = syscalls(repo)
        calls["cached"] = syscalls(repo)
        roles = sorted({r for c in calls.values() for r in c})
        table(
            [f"chain of {n:,}: system calls per task", "first run", "cached run"],
            [
                [r, *(f"{sum(calls[k].get(r, Counter()).values()) / n:.1f}" for k in calls)]
                for r in roles
            ]
            + [
                [
                    "= all",
                    *(f"{sum(sum(c.values()) for c in calls[k].values()) / n:.1f}" for k in calls),
                ]
            ],
        )
        print()
        top: Counter[str] = Counter()
        for c in calls["first"].values():
            top.update(c)
        print(
            "first run, most frequent: "
            + ", ".join(f"{name} {count / n:.1f}" for name, count in top.most_common(12))
        )


def main(argv: list[str]) -> None:
    if argv and argv[0] == "probe":
        result = _probe(argv[1], argv[2] if len(argv) > 2 else None)
        print(json.dumps(result))
        return
    run(quick="--quick" in argv, sizes=next((a for a in argv if a.isdigit()), None))


if __name__ == "__main__":
    main(sys.argv[1:])
