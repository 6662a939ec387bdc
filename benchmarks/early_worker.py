"""The first warm East worker started while ``e3 start`` loads, against not (``E3_EARLY_WORKER``).

A one-task fan-out, on fresh repositories: for a first run, how long after the
run starts (its ``run_started`` event) the East task is done (``task_completed``,
on the engine's clock) and the whole process's wall time; then the wall time of
a fully cached run, where the early worker is started and stopped unused. The
two settings alternate, repetition by repetition, so load spreads over both.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.e3cli import build_package, fanout_source, fresh_workspace, start_argv
from benchmarks.harness import env, table

MODES = {"on": "1", "off": "0"}


def _start(repo: Path, mode: str) -> tuple[float, float | None]:
    """(wall seconds, first task done after run start in seconds, if it ran) of one start."""
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.run(
        start_argv(repo, "--json"),
        env={**env(), "E3_EARLY_WORKER": MODES[mode]},
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - t0
    times: dict[str, float] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if "time" in event:
                times.setdefault(str(event["event"]), float(event["time"]))
    done = times.get("task_completed")
    return elapsed, None if done is None else done - times["run_started"]


def run(*, quick: bool, sizes: str | None = None) -> None:
    reps = 2 if quick else 7
    first: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
    cached: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="e3-early-") as tmpdir:
        tmp = Path(tmpdir)
        zip_path = build_package(tmp, "fanout1", fanout_source("fanout", 1))
        for rep in range(reps):
            for mode in list(MODES) if rep % 2 == 0 else list(reversed(MODES)):
                repo = fresh_workspace(tmp, zip_path, "fanout1")
                wall_s, after = _start(repo, mode)
                assert after is not None, "the first run executed nothing"
                first[mode].append((wall_s, after))
                cached[mode].append(_start(repo, mode)[0])

    def med(values: list[float]) -> float:
        return statistics.median(values)

    rows = []
    for label, pick, unit in (
        ("first East task done, after the run starts", lambda m: [a for _, a in first[m]], "ms"),
        ("whole `e3 start`, first run", lambda m: [w for w, _ in first[m]], "s"),
        ("whole `e3 start`, run fully cached", lambda m: cached[m], "s"),
    ):
        on, off = med(pick("on")), med(pick("off"))
        fmt = (lambda v: f"{v * 1000:.0f} ms") if unit == "ms" else (lambda v: f"{v:.3f} s")
        rows.append([label, fmt(on), fmt(off), f"{on / off:.2f}"])
    table([f"one-task fan-out (median of {reps})", "on", "off", "on / off"], rows)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
