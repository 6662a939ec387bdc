"""Runner overheads: the warm East runner against one east-py process per task."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.harness import env, ms, table


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples)


def run(*, quick: bool, sizes: str | None = None) -> None:
    del sizes
    from east import East, IntegerType

    from e3.codec import beast2, ir
    from e3.runners.base import RunRequest
    from e3.runners.east_warm import WarmEastRunner
    from e3.runners.process import ProcessRunner

    n_warm, n_proc, n_true = (30, 5, 30) if quick else (500, 40, 500)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        fn = East.function([IntegerType], IntegerType, lambda b, v: v + 1)
        (d / "f.beast2").write_bytes(ir.function_ir_bytes(fn))
        (d / "x.beast2").write_bytes(beast2.encode(1, IntegerType))
        argv = (
            "east-py",
            "run",
            "-i",
            str(d / "x.beast2"),
            "-o",
            str(d / "o.beast2"),
            str(d / "f.beast2"),
        )
        request = RunRequest(argv, d, env(), d / "out.txt", d / "err.txt")

        async def measure(runner: object, n: int) -> list[float]:
            samples = []
            for _ in range(n + 1):
                t0 = time.perf_counter()
                res = await runner.run(request, lambda pid: None)  # type: ignore[attr-defined]
                samples.append(time.perf_counter() - t0)
                assert res.ok, res
            await runner.close()  # type: ignore[attr-defined]
            return samples[1:]  # the first warm call includes starting the worker

        warm = asyncio.run(measure(WarmEastRunner(max_workers=1), n_warm))
        proc = asyncio.run(measure(ProcessRunner(), n_proc))
        true_samples = []
        for _ in range(n_true):
            t0 = time.perf_counter()
            subprocess.run(["/bin/true"], check=True)
            true_samples.append(time.perf_counter() - t0)
        w, p, t = _median_ms(warm), _median_ms(proc), _median_ms(true_samples)
        table(
            ["one add-1 East task", "median", "ratio"],
            [
                ["process runner (east-py run)", ms(p), "1.00"],
                ["warm runner", ms(w), f"{w / p:.3f} ({p / w:.0f}x faster)"],
                ["spawn /bin/true (reference point)", ms(t), f"{t / p:.3f}"],
            ],
        )
        print(
            f"\nwarm runner per-task overhead, median of {n_warm}: {ms(w)} "
            f"(p90 {ms(sorted(warm)[int(len(warm) * 0.9)])}); cores: {os.cpu_count()}"
        )
