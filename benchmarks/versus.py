"""This checkout's ``e3 start`` against another checkout's, interleaved, on the same packages.

``python -m benchmarks.versus OTHER/.venv/bin/e3 [--shapes chain:1000,fanout:1000] [--reps 5]``

For each shape and repetition, both builds get a fresh repository of their own
(created, imported and deployed by that build, untimed), then a timed first
run and a timed cached run, each a whole process after a ``sync``. The order of
the two builds alternates between repetitions, so load spreads over both. The
table gives medians and the ratio this / other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.e3cli import build_package, fanout_source
from benchmarks.harness import E3, compile_bytecode, env, table


def _run(argv: list[str]) -> float:
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(argv, env=env(), check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.versus", description=__doc__)
    parser.add_argument("other", help="the other build's e3 executable")
    parser.add_argument("--shapes", default="chain:1000,fanout:1000,shell_fanout:1000")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    builds = {"this": E3, "other": args.other}
    for exe in builds.values():  # each build's own interpreter, from its launcher's #! line
        with open(exe, encoding="utf-8") as launcher:
            compile_bytecode(launcher.readline().removeprefix("#!").strip())
    shapes = [(s, int(n)) for s, n in (x.split(":") for x in args.shapes.split(","))]
    times: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="e3-versus-") as tmpdir:
        tmp = Path(tmpdir)
        count = 0
        for shape, n in shapes:
            zip_path = build_package(tmp, f"{shape}{n}", fanout_source(shape, n))
            for rep in range(args.reps):
                for which in ("this", "other") if rep % 2 == 0 else ("other", "this"):
                    exe, count = builds[which], count + 1
                    repo = str(tmp / f"repo-{count}")
                    for step in (
                        ["repo", "create", repo],
                        ["package", "import", repo, str(zip_path)],
                        ["workspace", "deploy", repo, "ws", f"{shape}{n}"],
                    ):
                        subprocess.run([exe, *step], env=env(), check=True, capture_output=True)
                    first = _run([exe, "start", repo, "ws"])
                    cached = _run([exe, "start", repo, "ws"])
                    times.setdefault((shape, n, which), []).append((first, cached))
    rows = []
    for shape, n in shapes:
        this, other = times[(shape, n, "this")], times[(shape, n, "other")]
        tf, of = (statistics.median(t[0] for t in x) for x in (this, other))
        tc, oc = (statistics.median(t[1] for t in x) for x in (this, other))
        cells = (of, tf, tf / of, oc, tc, tc / oc)
        rows.append([f"{shape} {n:,}", *(f"{c:.2f}" for c in cells)])
    table(
        ["dataflow", "other first", "this first", "ratio", "other cached", "this cached", "ratio"],
        rows,
    )
    print(f"\n{args.reps} repetitions; load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
