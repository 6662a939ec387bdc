"""Timing helpers: whole processes, medians, tables, linear fits."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

BIN = Path(sys.executable).parent
E3 = str(BIN / "e3")
ROOT = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    """The benchmark environment: this venv first on PATH, no E3_* leaking in.

    Nor ``PYTHONDONTWRITEBYTECODE``: with it, every process measured would compile
    again each module changed since its bytecode was last written (see
    :func:`compile_bytecode`). Nor ``PYTHONUNBUFFERED``, which a shell may carry
    (container images often set it): with it, each line a process prints is a
    system call of its own, which is not how a user's e3 runs.
    """
    dropped = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
    out = {k: v for k, v in os.environ.items() if not k.startswith("E3_") and k not in dropped}
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    return out


def compile_bytecode(python: str = sys.executable) -> None:
    """Compile the bytecode of the e3 that ``python`` imports, before anything is timed.

    A process that finds a module's bytecode stale compiles it (tens of ms for a
    few modules), which is a cost of a fresh checkout, not of e3.
    """
    script = (
        "import compileall, os, e3; compileall.compile_dir(os.path.dirname(e3.__file__), quiet=1)"
    )
    subprocess.run([python, "-c", script], env=env(), check=True, stdout=subprocess.DEVNULL)


def wall(argv: Sequence[str], *, check: bool = True) -> float:
    """Wall time of one process (seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        list(argv), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - t0
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({proc.returncode}): "
            f"{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return elapsed


def median_of(argv: Sequence[str], repeat: int, warmup: int = 1) -> float:
    """Median wall time over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        wall(argv)
    return statistics.median(wall(argv) for _ in range(repeat))


def medians_interleaved(
    argvs: Sequence[Sequence[str]], repeat: int, warmup: int = 1
) -> list[float]:
    """Median wall time of each command, run in turn (one of each, ``repeat`` times).

    For a ratio of two commands: measured one after the other, a change in the
    machine's speed between the two series (seen here: ``import east`` at 0.23 s
    for ten runs, then ``e3 get``, which imports it, at 0.18 s) lands on one side.
    """
    for _ in range(warmup):
        for argv in argvs:
            wall(argv)
    times: list[list[float]] = [[] for _ in argvs]
    for _ in range(repeat):
        for i, argv in enumerate(argvs):
            times[i].append(wall(argv))
    return [statistics.median(t) for t in times]


def e3(*args: str | Path) -> float:
    """Wall time of one ``e3`` command."""
    return wall([E3, *map(str, args)])


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Print a Markdown table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    sys.stdout.flush()


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares ``y = a + b x``: returns ``(a, b, r2)``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    b = sxy / sxx if sxx else 0.0
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


def ms(seconds: float) -> str:
    """Seconds as milliseconds text."""
    return f"{seconds * 1000:.1f} ms"
