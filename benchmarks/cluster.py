"""Running on a Dask cluster (``--cluster local:2``) against the local runners, on this machine.

Three measurements, from one run:

1. a fan-out of 1,000 trivial East tasks: the local warm runner, then a local
   Dask cluster of two worker processes; tasks per second of the run itself
   (the ``run_finished`` duration: starting the cluster is not counted);
2. 200 shell tasks that each burn about 50 ms of CPU: the same two ways, to see
   the overhead next to real work (on 2 cores both can run 2 at a time);
3. the latency one task adds on the Dask path above Dask's own ``client.submit``
   round trip: sequential tasks through the Dask runner, minus a no-op Dask task,
   minus the same East task on a local warm worker.

Every figure depends on what else the machine runs: it is one sample, and the
table prints the load average next to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import E3, ROOT, e3, env, ms, table

sys.path.insert(0, str(ROOT / "examples"))

#: bash loop iterations that burn about 50 ms of CPU (calibrated at start).
_BURN_SCRIPT = "i=0; while [ $i -lt {n} ]; do i=$((i+1)); done; cp {{inputs[0]}} {{output}}"


def _repo(tmp: Path, name: str, pkg: object) -> Path:
    from e3.sdk import export

    zp = tmp / f"{name}.zip"
    export(pkg, zp)  # type: ignore[arg-type]
    repo = tmp / f"repo-{name}"
    e3("repo", "create", repo)
    e3("package", "import", repo, zp)
    e3("workspace", "deploy", repo, "ws", pkg.name)  # type: ignore[attr-defined]
    return repo


def _run(repo: Path, *extra: str) -> tuple[float, float, int]:
    """``(run duration, wall time, tasks executed)`` of one ``e3 start --json``."""
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [E3, "start", str(repo), "ws", "--json", *extra], env=env(), capture_output=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace")[-2000:])
    last = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return float(last["duration"]), wall, int(last["counts"]["executed"])


def _calibrate_burn(target: float = 0.05) -> int:
    """Iterations of the bash loop that take ``target`` seconds of CPU here."""
    n = 20_000
    for _ in range(4):
        t0 = time.process_time()
        proc = subprocess.run(
            ["bash", "-c", f"i=0; while [ $i -lt {n} ]; do i=$((i+1)); done; times"],
            capture_output=True,
            check=True,
        )
        del t0
        user = proc.stdout.decode().split()[0]  # "0m0.052s"
        spent = float(user.split("m")[1].rstrip("s")) + 60 * float(user.split("m")[0])
        if spent > 0.005:
            n = int(n * target / spent)
    return max(1000, n)


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run(*, quick: bool, sizes: str | None = None) -> None:
    del sizes
    import fanout
    from east import IntegerType

    import e3 as e3api

    n_east, n_burn, n_lat = (50, 10, 10) if quick else (1000, 200, 100)
    conc_cluster = "32"
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        rows = []
        local = _run(_repo(tmp, "east-local", fanout.make(n_east, "fanout")))
        cluster = _run(
            _repo(tmp, "east-cluster", fanout.make(n_east, "fanout")),
            "--cluster",
            "local:2",
            "--concurrency",
            conc_cluster,
        )
        for label, (dur, wall, executed) in (
            ("local warm runner (concurrency 4)", local),
            (f"--cluster local:2 (concurrency {conc_cluster})", cluster),
        ):
            rows.append([label, f"{dur:.2f} s", f"{executed / dur:.0f}", f"{wall:.1f} s"])
        print(f"{n_east} trivial East tasks (fan-out); load average before: {_load()}\n")
        table(["runner", "run", "tasks/s", "e3 start wall"], rows)

        burn = _calibrate_burn()
        x = e3api.input("x", IntegerType, default=0)
        tasks = [
            e3api.custom_task(f"b{i}", [x], IntegerType, _BURN_SCRIPT.format(n=burn))
            for i in range(n_burn)
        ]
        pkg = e3api.package(f"burn{n_burn}", "1.0.0", *tasks)
        local = _run(_repo(tmp, "burn-local", pkg), "--concurrency", "2")
        cluster = _run(
            _repo(tmp, "burn-cluster", pkg), "--cluster", "local:2", "--concurrency", "4"
        )
        print(
            f"\n{n_burn} shell tasks of ~50 ms CPU each ({burn} bash loop turns); "
            f"load average before: {_load()}\n"
        )
        table(
            ["runner", "run", "tasks/s", "vs local"],
            [
                [
                    "local process runner (concurrency 2)",
                    f"{local[0]:.2f} s",
                    f"{n_burn / local[0]:.1f}",
                    "1.00",
                ],
                [
                    "--cluster local:2 (concurrency 4)",
                    f"{cluster[0]:.2f} s",
                    f"{n_burn / cluster[0]:.1f}",
                    f"{cluster[0] / local[0]:.2f}",
                ],
            ],
        )
        _latency(tmp, n_lat)


def _latency(tmp: Path, n: int) -> None:
    """Sequential per-task latency: Dask no-op, the Dask runner, a local warm worker."""
    code = (
        "import sys; from benchmarks.cluster import measure_latency; "
        f"measure_latency(sys.argv[1], {n})"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp / "latency")],
        env=env(),
        cwd=ROOT,
        capture_output=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace")[-2000:])
    sub, dask_task, warm, worker, each, mapped = json.loads(
        proc.stdout.decode().strip().splitlines()[-1]
    )
    print(f"\nOne trivial East task at a time ({n} each, medians); load average: {_load()}\n")
    table(
        ["what", "latency"],
        [
            ["Dask client.submit + result of a no-op (local:2)", ms(sub)],
            ["e3 task through the Dask runner (local:2)", ms(dask_task)],
            ["the same task on a local warm worker", ms(warm)],
            ["  of which e3's own work on the worker (inputs, reply)", ms(worker)],
            [
                "Dask path overhead above submit (runner − submit − local)",
                ms(dask_task - sub - warm),
            ],
        ],
    )
    print(f"\nBare Dask ceiling on the same local:2 cluster ({_CEILING} no-op tasks)\n")
    table(
        ["what", "tasks/s"],
        [
            ["client.submit each, 32 in flight (as e3 submits)", f"{each:.0f}"],
            ["one client.map of them all", f"{mapped:.0f}"],
        ],
    )


#: No-op tasks of the bare Dask throughput ceiling.
_CEILING = 1000


def _noop(x: int) -> int:
    return x


async def _ceiling(client: Any) -> tuple[float, float]:
    """No-op tasks per second: one ``submit`` each with 32 in flight, then one ``map``."""
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with gate:
            future = client.submit(_noop, i, key=f"each-{i}", pure=False)
            await future
            future.release()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(_CEILING)))
    each = _CEILING / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    futures = client.map(_noop, range(_CEILING), key=[f"map-{i}" for i in range(_CEILING)])
    await client.gather(futures)
    mapped = _CEILING / (time.perf_counter() - t0)
    client.cancel(futures)
    return each, mapped


def measure_latency(directory: str, n: int) -> None:
    """Print ``[submit, dask task, local warm, worker-side e3 work]`` medians and the
    bare Dask ceilings ``[submit each, map]`` (tasks/s) as JSON."""
    asyncio.run(_measure(Path(directory), n))


async def _measure(d: Path, n: int) -> None:
    from east import East, IntegerType

    import e3.runners.dask.runner as dask_runner
    from e3.codec import beast2, ir
    from e3.runners.base import RunRequest, TaskFiles
    from e3.runners.dask.cluster import parse_address
    from e3.runners.east_warm import WarmEastRunner
    from e3.store.repository import create_repository

    repo, _ = create_repository(d / "repo")
    fn = East.function([IntegerType], IntegerType, lambda b, v: v + 1)
    hashes = [
        repo.objects.put(ir.function_ir_bytes(fn)),
        repo.objects.put(beast2.encode(1, IntegerType)),
    ]
    command = ir.east_runner_command(["east-py", "run"])
    paths = [str(repo.objects.path_of(h)) for h in hashes]
    out = d / "out.beast2"
    argv = tuple(ir.evaluate_command(command, paths, str(out)))
    files = TaskFiles(
        repo.objects.put(command),
        command,
        tuple(zip(hashes, paths, strict=True)),
        out,
        str(repo.root),
        1 << 20,
    )
    worker_side: list[float] = []
    original = dask_runner._result

    def record(reply: object) -> object:
        t = reply.timings  # type: ignore[attr-defined]
        worker_side.append(t["inputs"] + t["reply"])
        return original(reply)  # type: ignore[arg-type]

    dask_runner._result = record  # type: ignore[assignment]
    runner = dask_runner.DaskRunner(parse_address("local:2"))
    await runner.prepare()
    client = runner._client
    submit, task, warm = [], [], []
    for i in range(n + 3):
        t0 = time.perf_counter()
        await client.submit(_noop, i, key=f"noop-{i}", pure=False)
        submit.append(time.perf_counter() - t0)
    for i in range(n + 3):
        request = RunRequest(
            argv, d, {"E3_EXECUTION_ID": f"lat-{i}"}, d / "o", d / "e", files=files
        )
        t0 = time.perf_counter()
        result = await runner.run(request, lambda pid: None)
        task.append(time.perf_counter() - t0)
        assert result.ok, result
    ceiling = await _ceiling(client)
    await runner.close()
    local = WarmEastRunner(max_workers=1)
    for _ in range(n + 3):
        request = RunRequest(argv, d, env(), d / "o", d / "e")
        t0 = time.perf_counter()
        assert (await local.run(request, lambda pid: None)).ok
        warm.append(time.perf_counter() - t0)
    await local.close()
    med = statistics.median
    medians = [med(submit[3:]), med(task[3:]), med(warm[3:]), med(worker_side[3:])]
    print(json.dumps([*medians, *ceiling]))
