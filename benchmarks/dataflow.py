"""Whole dataflows through the CLI: chains and fan-outs of trivial East and shell tasks.

Each row is ``e3 start`` as a fresh process (CLI start included): the first run
(everything executes) and a second run (everything comes from the cache).

Repositories are kept until the end instead of being deleted after their row.
On this machine's ``/tmp`` (ext4 without a journal) the allocator skips inodes
freed in the last 60–300 s, so a run right after deleting a repository can
create its files more slowly (measured: 1.0–1.6 times the time of a run
without), and every row would have measured the clean-up of the one before.
The last table measures that case on its own.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import E3, ROOT, e3, env, linear_fit, ms, table, wall

sys.path.insert(0, str(ROOT / "examples"))


_REPO_NUMBERS = itertools.count()

#: First runs of up to 1,000 tasks are measured this many times (the median is reported).
REPEATS = 3


def _setup(tmp: Path, shape: str, n: int) -> Path:
    import fanout

    from e3.sdk import export

    zp = tmp / f"{shape}{n}.zip"
    export(fanout.make(n, shape), zp)
    repo = tmp / f"repo-{shape}{n}-{next(_REPO_NUMBERS)}"
    e3("repo", "create", repo)
    e3("package", "import", repo, zp)
    e3("workspace", "deploy", repo, "ws", f"{shape}{n}")
    return repo


def _start(repo: Path, *extra: str) -> float:
    # Untimed: write back what setting up (or the last row's clean-up) left dirty, which
    # the run's own file-system syncs would otherwise wait for.
    os.sync()
    return wall([E3, "start", str(repo), "ws", *extra])


def run_sizes(quick: bool, sizes: str | None) -> list[int]:
    if sizes:
        return [int(s) for s in sizes.split(",")]
    return [10] if quick else [10, 100, 1000]


def run(*, quick: bool, sizes: str | None = None) -> None:
    ns = run_sizes(quick, sizes)
    rows = []
    fits: dict[str, list[tuple[int, float]]] = {}
    # The shell fan-out's repositories and first-run times, for the last table.
    shell_repos: list[Path] = []
    shell_firsts: list[float] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for shape in ("chain", "fanout", "shell_fanout", "noop_fanout"):
            for n in ns:
                if shape.endswith("fanout") and shape != "fanout" and n > 1000 and not sizes:
                    continue
                # Runs of up to 1,000 tasks are repeated on fresh repositories: on this
                # shared machine one run can take half as long again as the next.
                firsts, cacheds = [], []
                for _ in range(1 if quick or n > 1000 else REPEATS):
                    repo = _setup(tmp, shape, n)
                    firsts.append(_start(repo))
                    cacheds.append(_start(repo))
                    if shape == "shell_fanout" and n == _churn_size(quick):
                        shell_repos.append(repo)
                        shell_firsts.append(firsts[-1])
                first, cached = statistics.median(firsts), statistics.median(cacheds)
                spread = _range(firsts) if len(firsts) > 1 else "-"
                rows.append(
                    [
                        shape,
                        str(n),
                        f"{first:.2f} s",
                        spread,
                        f"{first / n * 1000:.2f} ms",
                        f"{cached:.2f} s",
                    ]
                )
                fits.setdefault(shape, []).append((n, first))
        table(
            [
                "dataflow",
                "tasks",
                "first run" if quick else f"first run (median of {REPEATS} up to 1,000 tasks)",
                "first run range",
                "per task",
                "cached re-run",
            ],
            rows,
        )
        print()
        fit_rows = []
        for shape, points in fits.items():
            if len(points) >= 2:
                a, b, r2 = linear_fit([p[0] for p in points], [p[1] for p in points])
                fit_rows.append([shape, f"{a:.3f} s", ms(b), f"{r2:.4f}"])
        if fit_rows:
            table(["first run fit: t = a + b·n", "a (fixed)", "b (per task)", "R²"], fit_rows)
            print()
        # Warm runner against one process per task, same dataflow, same run.
        n = 10 if quick else 100
        repo = _setup(tmp, "fanout", n)
        warm = _start(repo, "--force")
        process = _start(repo, "--force", "--isolation", "process")
        table(
            [f"fanout of {n} East tasks, --force", "wall", "ratio"],
            [
                ["--isolation process", f"{process:.2f} s", "1.00"],
                [
                    "warm (default)",
                    f"{warm:.2f} s",
                    f"{warm / process:.3f} ({process / warm:.1f}x)",
                ],
            ],
        )
        print()
        # A no-op shell task against spawning /bin/true: per-task slopes, concurrency 1.
        small, big = (5, 20) if quick else (50, 250)
        slopes = []
        for k in (small, big):
            r = _setup(tmp, "noop_fanout", k)
            slopes.append(wall([E3, "start", str(r), "ws", "--concurrency", "1"]))
        per_task = (slopes[1] - slopes[0]) / (big - small)
        t0 = time.perf_counter()
        for _ in range(big):
            subprocess.run(["/bin/true"], check=True, env=env())
        true_each = (time.perf_counter() - t0) / big
        table(
            ["no-op shell task (concurrency 1)", "per task"],
            [
                ["spawn /bin/true", ms(true_each)],
                ["e3 task running `true`", ms(per_task)],
                ["difference", ms(per_task - true_each)],
            ],
        )
        print()
        # The same shell fan-out, each run right after deleting a repository like it.
        n = _churn_size(quick)
        churned = []
        for old in shell_repos:
            subprocess.run(["rm", "-rf", str(old)], check=True)
            churned.append(_start(_setup(tmp, "shell_fanout", n)))
        if churned:
            calm = statistics.median(shell_firsts)
            table(
                [f"shell fan-out of {n}, first run", "median", "range", "ratio"],
                [
                    ["no repository deleted before", f"{calm:.2f} s", _range(shell_firsts), "1.00"],
                    [
                        "right after deleting one",
                        f"{statistics.median(churned):.2f} s",
                        _range(churned),
                        f"{statistics.median(churned) / calm:.2f}",
                    ],
                ],
            )


def _churn_size(quick: bool) -> int:
    """Tasks of the shell fan-out measured right after a deletion."""
    return 10 if quick else 1000


def _range(times: list[float]) -> str:
    return f"{min(times):.2f}–{max(times):.2f} s"
