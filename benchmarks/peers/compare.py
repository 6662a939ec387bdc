"""e3 and peer engines on the same dataflows, each a fresh process per measurement.

``python -m benchmarks.peers [--quick] [--sizes 200,1000] [--repeat 3] [--peers …]``
(``make bench-peers`` creates the peers' virtual environments first).

Dataflows: a chain of N add-one tasks and a fan-out of N independent tasks
(task i = x + i), N = 200 and 1,000 — the shapes of ``examples/fanout.py``.
Each peer runs ``drivers/<peer>_driver.py`` with the interpreter of its own
virtual environment (``.bench-peers/<peer>``, installed from
``requirements/<peer>.txt``); e3 runs through its CLI (``e3 start --concurrency
2``, like the peers' two workers on this two-core machine) on a repository set
up beforehand, untimed.

For each dataflow, peer and repetition: a first run on a fresh cache (a fresh
repository for e3, a fresh directory for the peer's cache or database, which is
also its ``HOME``), then a cached run that reuses it; Dask has no cache across
runs, so it gets a first run only. Every time is a whole process's wall time,
interpreter start and imports included. The table shows medians of the
repetitions, which are interleaved (repetition 1 of every peer, then repetition
2, …) so that changes in the machine's load spread over all peers. Each driver
checks its results and reports how many task bodies it ran where it can count
them; a cached run that ran any is marked. Raw results go to
``benchmarks/results/peers-<time>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.e3cli import (
    build_package,
    executed_count,
    fanout_source,
    fresh_workspace,
    start_argv,
)
from benchmarks.harness import ROOT, env, table

HERE = Path(__file__).resolve().parent
DRIVERS = HERE / "drivers"
REQUIREMENTS = HERE / "requirements"
RESULTS = ROOT / "benchmarks" / "results"

#: A process still running after this long is killed and reported as failed.
TIMEOUT = 900.0


@dataclass(frozen=True)
class Peer:
    """An engine in the comparison."""

    key: str
    title: str
    #: Virtual environment under ``--venvs`` (None: e3 itself, from this interpreter's venv).
    venv: str | None = None
    #: Distribution whose pinned version goes into the column heading.
    package: str | None = None
    driver: str | None = None
    args: tuple[str, ...] = ()
    #: Whether it keeps results across runs (else only first runs are measured).
    cached: bool = True
    #: Extra environment; ``{dir}`` is the run's cache directory.
    extra_env: tuple[tuple[str, str], ...] = ()


PEERS = (
    Peer("e3", "e3"),
    Peer("hamilton", "Hamilton", "hamilton", "apache-hamilton", "hamilton_driver.py"),
    Peer("joblib", "joblib", "joblib", "joblib", "joblib_driver.py"),
    Peer("dask", "Dask (threads)", "dask", "dask", "dask_driver.py", ("threads",), cached=False),
    Peer(
        "dask-distributed",
        "Dask distributed",
        "dask",
        "distributed",
        "dask_driver.py",
        ("distributed",),
        cached=False,
    ),
    Peer("redun", "redun", "redun", "redun", "redun_driver.py"),
    Peer(
        "prefect",
        "Prefect",
        "prefect",
        "prefect",
        "prefect_driver.py",
        extra_env=(
            # No API URL: the flow starts Prefect's ephemeral local server (a subprocess,
            # SQLite database under PREFECT_HOME), and sends it no analytics.
            ("PREFECT_HOME", "{dir}/prefect"),
            ("PREFECT_SERVER_EPHEMERAL_ENABLED", "true"),
            ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
            # The server's default 20 s to start (migrating a new database) is not always
            # enough on a loaded two-core machine; waiting longer changes nothing else.
            ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "600"),
        ),
    ),
)

#: Inherited variables that could change a peer's behaviour; removed from its environment.
_DROPPED_PREFIXES = ("E3_", "PYTHON", "VIRTUAL_ENV", "PREFECT_", "DASK_", "REDUN_", "JOBLIB_")


@dataclass
class Run:
    """One process: wall time, exit code, peak RSS, task bodies it ran (if countable)."""

    wall: float
    returncode: int
    maxrss_kb: int
    executed: int | None = None
    error: str | None = None


@dataclass
class Measurement:
    """A first run and (for peers with a cache) the cached run after it."""

    peer: str
    shape: str
    n: int
    repetition: int
    first: Run
    cached: Run | None = None


@dataclass
class Results:
    """Everything one comparison measured, as written to the JSON file."""

    started: str
    machine: dict[str, object]
    versions: dict[str, str]
    sizes: list[int]
    repeat: int
    e3_concurrency: int
    measurements: list[Measurement] = field(default_factory=list)
    finished: str = ""
    load_average_end: list[float] = field(default_factory=list)


def pinned_version(venv: str, package: str) -> str:
    """The exact version ``requirements/<venv>.txt`` pins for ``package``."""
    for line in (REQUIREMENTS / f"{venv}.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower().replace("_", "-") == package:
            return version.strip()
    raise ValueError(f"{package} is not pinned in requirements/{venv}.txt")


def e3_version() -> str:
    from importlib.metadata import version

    return version("e3-engine")


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    tmp = tempfile.gettempdir()
    df = subprocess.run(["df", "-T", tmp], capture_output=True, text=True, check=False).stdout
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "uname": " ".join(platform.uname()),
        "python": platform.python_version(),
        "tmp": tmp,
        "df_T_tmp": df.strip(),
        "load_average_start": list(os.getloadavg()),
    }


def peer_env(peer: Peer, venv: Path, directory: Path) -> dict[str, str]:
    """The peer's environment: its venv first on PATH, HOME in its cache, no tracking."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    out["PATH"] = f"{venv / 'bin'}{os.pathsep}{out.get('PATH', '')}"
    out["HOME"] = str(directory)
    out["DO_NOT_TRACK"] = "1"
    for key, value in peer.extra_env:
        out[key] = value.format(dir=directory)
    return out


def run_process(
    argv: list[str], environ: dict[str, str], cwd: Path | None = None
) -> tuple[Run, str]:
    """Run one process to its end: its :class:`Run` (``ru_maxrss`` covers its waited-for
    children) and its stdout."""
    # Untimed: write back what earlier runs or setting up left dirty, which this run's own
    # syncs (e3's, SQLite's) would otherwise wait for (see benchmarks/dataflow.py).
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv, env=environ, cwd=cwd, stdout=out, stderr=err, start_new_session=True
        )
        timer = threading.Timer(TIMEOUT, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, rusage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        # Whatever the process left behind (a peer's server or workers) goes with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    run = Run(wall=elapsed, returncode=code, maxrss_kb=rusage.ru_maxrss)
    if code != 0:
        run.error = (stderr or stdout)[-3000:]
    return run, stdout


class Comparison:
    """Runs the measurements of one comparison."""

    def __init__(self, tmp: Path, venvs: Path, concurrency: int) -> None:
        self.tmp = tmp
        self.venvs = venvs
        self.concurrency = concurrency
        self._zips: dict[tuple[str, int], Path] = {}

    def measure(self, peer: Peer, shape: str, n: int, repetition: int) -> Measurement:
        if peer.driver is None:
            return self._e3(shape, n, repetition)
        assert peer.venv is not None
        venv = self.venvs / peer.venv
        directory = self.tmp / f"{peer.key}-{shape}{n}-{repetition}"
        directory.mkdir()
        environ = peer_env(peer, venv, directory)
        argv = [
            str(venv / "bin" / "python"),
            str(DRIVERS / peer.driver),
            shape,
            str(n),
            str(directory),
            *peer.args,
        ]
        first = self._driver_run(argv, environ, directory)
        cached = self._driver_run(argv, environ, directory) if peer.cached else None
        return Measurement(peer.key, shape, n, repetition, first, cached)

    @staticmethod
    def _driver_run(argv: list[str], environ: dict[str, str], cwd: Path) -> Run:
        run, stdout = run_process(argv, environ, cwd)
        reports = [line for line in stdout.splitlines() if line.startswith('{"executed"')]
        if run.returncode == 0:
            if not reports:
                run.returncode, run.error = 1, f"no report line in the driver's output: {stdout}"
            else:
                run.executed = json.loads(reports[-1])["executed"]
        return run

    def _e3(self, shape: str, n: int, repetition: int) -> Measurement:
        key = (shape, n)
        if key not in self._zips:
            self._zips[key] = build_package(self.tmp, f"{shape}{n}", fanout_source(shape, n))
        repo = fresh_workspace(self.tmp, self._zips[key], f"{shape}{n}")
        argv = start_argv(repo, "--concurrency", str(self.concurrency))
        runs = []
        for _ in range(2):
            run, stdout = run_process(argv, env())
            run.executed = executed_count(stdout)
            runs.append(run)
        first, cached = runs
        return Measurement("e3", shape, n, repetition, first, cached)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 tasks, one repetition")
    parser.add_argument("--sizes", help="comma-separated task counts (default 200,1000)")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3; median reported)")
    parser.add_argument(
        "--peers",
        help=f"comma-separated subset of {','.join(p.key for p in PEERS)} (e3 is always run)",
    )
    parser.add_argument("--shapes", default="chain,fanout", help="chain,fanout")
    parser.add_argument(
        "--venvs", default=str(ROOT / ".bench-peers"), help="the peers' virtual environments"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="e3 start --concurrency")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    else:
        sizes = [10] if args.quick else [200, 1000]
    repeat = args.repeat or (1 if args.quick else 3)
    wanted = set(args.peers.split(",")) | {"e3"} if args.peers else {p.key for p in PEERS}
    peers = [p for p in PEERS if p.key in wanted]
    venvs = Path(args.venvs).resolve()
    missing = [
        p.venv for p in peers if p.venv and not (venvs / p.venv / ".installed-stamp").exists()
    ]
    if missing:
        print(
            f"missing peer environments under {venvs}: {', '.join(sorted(set(missing)))} "
            "(make bench-peers creates them)",
            file=sys.stderr,
        )
        return 2
    versions = {"e3": e3_version()}
    for p in peers:
        if p.venv and p.package:
            versions[p.key] = pinned_version(p.venv, p.package)
    results = Results(
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine(),
        versions=versions,
        sizes=sizes,
        repeat=repeat,
        e3_concurrency=args.concurrency,
    )
    shapes = args.shapes.split(",")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="e3-peers-") as tmpdir:
        comparison = Comparison(Path(tmpdir), venvs, args.concurrency)
        for shape in shapes:
            for n in sizes:
                for r in range(repeat):
                    for peer in peers:
                        m = comparison.measure(peer, shape, n, r)
                        results.measurements.append(m)
                        print(f"  {shape} {n} #{r + 1} {peer.key}: {_cell(m)}", file=sys.stderr)
                        for run in (m.first, m.cached):
                            if run is not None and run.error:
                                print(_indent(run.error[-1500:]), file=sys.stderr)
        # Reported before the directories are removed, which takes a while.
        results.finished = datetime.now(UTC).isoformat(timespec="seconds")
        results.load_average_end = list(os.getloadavg())
        report(results, peers, shapes)
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        path = RESULTS / f"peers-{stamp}.json"
        path.write_text(json.dumps(asdict(results), indent=1) + "\n")
        print(
            f"\nraw results: {path.relative_to(ROOT)}; measured in "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    return 1 if any(_failed(m) for m in results.measurements) else 0


def _indent(text: str) -> str:
    return "\n".join(f"    | {line}" for line in text.splitlines())


def _failed(m: Measurement) -> bool:
    return m.first.returncode != 0 or (m.cached is not None and m.cached.returncode != 0)


def _cell(m: Measurement) -> str:
    first = "failed" if m.first.returncode else f"{m.first.wall:.2f}"
    if m.cached is None:
        return f"{first} / —"
    cached = "failed" if m.cached.returncode else f"{m.cached.wall:.2f}"
    return f"{first} / {cached}"


def _median(runs: list[Run]) -> float | None:
    ok = [r.wall for r in runs if r.returncode == 0]
    return statistics.median(ok) if ok and len(ok) == len(runs) else None


def _heading(peer: Peer, versions: dict[str, str]) -> str:
    return f"{peer.title} {versions[peer.key]}"


def report(results: Results, peers: list[Peer], shapes: list[str]) -> None:
    """Print the comparison: seconds (first / cached) and ratios to e3."""
    by_key: dict[tuple[str, str, int], list[Measurement]] = {}
    for m in results.measurements:
        by_key.setdefault((m.peer, m.shape, m.n), []).append(m)
    medians: dict[tuple[str, str, int], tuple[float | None, float | None]] = {}
    recomputed: set[tuple[str, str, int]] = set()
    for key, ms in by_key.items():
        first = _median([m.first for m in ms])
        cached_runs = [m.cached for m in ms if m.cached is not None]
        cached = _median(cached_runs) if cached_runs else None
        medians[key] = (first, cached)
        if any(r.executed for r in cached_runs):
            recomputed.add(key)

    def fmt(x: float | None, unit: str = "") -> str:
        return "failed" if x is None else f"{x:.2f}{unit}"

    headings = [_heading(p, results.versions) for p in peers]
    rows, ratio_rows = [], []
    for shape in shapes:
        for n in results.sizes:
            label = f"{'chain' if shape == 'chain' else 'fan-out'} of {n:,}"
            row, ratio_row = [label], [label]
            e3_first, e3_cached = medians[("e3", shape, n)]
            for p in peers:
                first, cached = medians[(p.key, shape, n)]
                mark = " †" if (p.key, shape, n) in recomputed else ""
                if p.cached:
                    row.append(f"{fmt(first)} / {fmt(cached)}{mark}")
                else:
                    row.append(f"{fmt(first)} / —")
                ratio_row.append(
                    f"{_ratio(first, e3_first)} / {_ratio(cached, e3_cached) if p.cached else '—'}"
                )
            rows.append(row)
            ratio_rows.append(ratio_row)
    print(
        f"\nSeconds, first run / cached run (median of {results.repeat}, whole processes; "
        f"e3: e3 start --concurrency {results.e3_concurrency}):\n"
    )
    table(["dataflow", *headings], rows)
    if recomputed:
        print("\n† a cached run executed task bodies again")
    print("\nTime relative to e3 in the same run (first / cached; > 1 is slower than e3):\n")
    table(["dataflow", *headings], ratio_rows)
    if len(results.sizes) >= 2:
        small, big = min(results.sizes), max(results.sizes)
        per_rows = []
        for shape in shapes:
            row = [f"{'chain' if shape == 'chain' else 'fan-out'}"]
            for p in peers:
                f_small, c_small = medians[(p.key, shape, small)]
                f_big, c_big = medians[(p.key, shape, big)]
                first = _per_task(f_small, f_big, big - small)
                row.append(
                    f"{first} / {_per_task(c_small, c_big, big - small)}"
                    if p.cached
                    else f"{first} / —"
                )
            per_rows.append(row)
        print(
            f"\nCost per task in ms, first / cached: (t({big:,}) − t({small:,})) / "
            f"{big - small:,}, which leaves out start-up and other fixed costs:\n"
        )
        table(["dataflow", *headings], per_rows)
    m = results.machine
    print(
        f"\nmachine: {m['cores']} cores, {m['memory_gib']} GiB, {m['uname']}; "
        f"load average at start {_load(m['load_average_start'])}, "
        f"at end {_load(results.load_average_end)}"
    )


def _load(values: object) -> str:
    assert isinstance(values, list)
    return " ".join(f"{v:.2f}" for v in values)


def _per_task(small: float | None, big: float | None, tasks: int) -> str:
    if small is None or big is None:
        return "failed"
    return f"{(big - small) / tasks * 1000:.2f}"


def _ratio(x: float | None, base: float | None) -> str:
    if x is None or base is None:
        return "failed"
    return f"{x / base:.2f}"
