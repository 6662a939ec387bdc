"""Cluster faults: SIGKILL of Dask workers and schedulers while ``e3 start --cluster`` runs.

A real ``dask scheduler`` (on a fixed port of 127.0.0.1, so a restarted one is
found again) and two ``dask worker`` processes with nannies run a random
package (:mod:`fuzz.model`). Each round changes a few inputs, starts the
dataflow on the cluster, and kills a worker (or the scheduler) at a random
moment after the first task started. Besides the checks of every fault
(:func:`fuzz.faults._after_fault`: nothing lost, torn or redone, outputs equal
the oracle's), each round checks:

* worker kill: the run still succeeds, no task failure names the cluster (a
  lost worker is not a user failure), and no (task, inputs) gained more than
  one execution record in the run;
* scheduler kill: ``e3 start`` ends with exit code 9 and one line naming the
  lost scheduler (or finished before the kill), and after a restart of the
  cluster (Dask workers stop when they lose their scheduler) the next start
  redoes nothing that had finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from fuzz.faults import Attempts, FaultStats, _after_fault, _attempts, _dirty
from fuzz.scenario import E3, Scenario, Violation, _env

DASK = str(Path(sys.executable).with_name("dask"))
#: Bound of every wait on the cluster (start-up, a nanny restarting its worker).
DEADLINE = 120.0


class _Cluster:
    """A scheduler on a fixed port and two workers with nannies, as real processes."""

    def __init__(self, workdir: Path, workers: int = 2) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.count = workers
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.start()

    def start(self) -> None:
        """Start the scheduler and the workers; wait until every worker is known."""
        self.start_scheduler()
        for _ in range(self.count):
            self.workers.append(
                self._spawn(
                    [
                        *(DASK, "worker", self.address, "--nthreads", "1", "--host", "127.0.0.1"),
                        *("--no-dashboard", "--local-directory", str(self.workdir / "workers")),
                    ]
                )
            )
        self.wait_ready()

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.workdir / "cluster.log", "ab") as log:
            return subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_env(),
            )

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn(
            [
                *(DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port)),
                *("--dashboard-address", "127.0.0.1:0"),
            ]
        )

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        _kill(self.scheduler)

    def wait_ready(self) -> dict[str, int]:
        """Worker address → pid, once the scheduler knows every worker."""
        from distributed import Client

        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                with Client(self.address, timeout=10, set_as_default=False) as client:
                    client.wait_for_workers(self.count, timeout=DEADLINE)
                    pids: dict[str, int] = client.run(os.getpid)
                if len(pids) >= self.count:
                    return pids
            except (OSError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise Violation(f"the Dask cluster did not come back: {exc}") from exc
            time.sleep(0.2)

    def close(self) -> None:
        for proc in [*self.workers, *([self.scheduler] if self.scheduler else [])]:
            _kill(proc)
        self.workers.clear()
        self.scheduler = None


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(DEADLINE)


class _Run(threading.Thread):
    """``e3 start --cluster … --json`` in the background, its events collected."""

    def __init__(self, sc: Scenario, address: str) -> None:
        super().__init__(daemon=True)
        self.proc = subprocess.Popen(
            [
                *(E3, "start", str(sc.repo.root), "ws", "--json", "--cluster", address),
                *("--concurrency", "8"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        self.events: list[dict[str, object]] = []
        self.started = threading.Event()
        self.start()

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))
            if b'"task_started"' in line:
                self.started.set()
        self.started.set()

    def finish(self) -> tuple[int, str]:
        try:
            code = self.proc.wait(DEADLINE * 2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Violation("e3 start on the cluster did not end within two minutes") from None
        self.join(DEADLINE)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read().decode(errors="replace")


def _one_record_per_execution(sc: Scenario, before: Attempts) -> None:
    after = _attempts(sc)
    twice = [k for k, (n, _ok) in after.items() if n - before.get(k, (0, False))[0] > 1]
    if twice:
        raise sc.fail(f"{len(twice)} (task, inputs) got more than one execution record in a run")


def worker_kills(sc: Scenario, kills: int, stats: FaultStats, workdir: Path) -> None:
    """SIGKILL a Dask worker while a cluster run executes tasks (see the module docstring)."""
    cluster = _Cluster(workdir / "dask-workers")
    try:
        pids = cluster.wait_ready()
        done = 0
        while done < kills:
            _dirty(sc, sc.rng.randint(1, 4))
            before = _attempts(sc)
            run = _Run(sc, cluster.address)
            run.started.wait(DEADLINE)
            time.sleep(sc.rng.uniform(0, 0.3))
            alive = run.proc.poll() is None
            victim = sc.rng.choice(sorted(pids.values()))
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
            code, err = run.finish()
            blamed = [
                e
                for e in run.events
                if e.get("event") == "task_failed"
                and any(w in str(e.get("detail")) for w in ("worker", "cluster", "Dask"))
            ]
            if code not in (0, 1) or blamed or "Traceback" in err:
                raise sc.fail(f"worker kill: start exited {code}: {err.strip()} {blamed[:2]}")
            _one_record_per_execution(sc, before)
            sc.log.append("cluster start, worker SIGKILL" if alive else "cluster start ended first")
            _after_fault(sc, before)
            pids = cluster.wait_ready()  # the nanny replaced the worker
            if alive:
                done += 1
                stats.add("worker SIGKILL (run going)")
            else:
                stats.add("cluster start ended before its worker kill")
    finally:
        cluster.close()


def scheduler_kills(sc: Scenario, kills: int, stats: FaultStats, workdir: Path) -> None:
    """SIGKILL the Dask scheduler mid-run, restart it, check that nothing finished is redone."""
    cluster = _Cluster(workdir / "dask-scheduler")
    try:
        for _ in range(kills):
            _dirty(sc, sc.rng.randint(1, 4))
            before = _attempts(sc)
            run = _Run(sc, cluster.address)
            run.started.wait(DEADLINE)
            time.sleep(sc.rng.uniform(0, 0.3))
            cluster.kill_scheduler()
            code, err = run.finish()
            lines = [x for x in err.splitlines() if x.strip()]
            if code == 9:
                if len(lines) != 1 or "Dask scheduler" not in lines[0]:
                    raise sc.fail(f"scheduler kill: expected one line, got {err!r}")
                stats.add("scheduler SIGKILL (run stopped, exit 9)")
            elif code in (0, 1) and "Traceback" not in err:
                stats.add("cluster start ended before its scheduler kill")
            else:
                raise sc.fail(f"scheduler kill: start exited {code}: {err.strip()}")
            _one_record_per_execution(sc, before)
            # Workers stop when their scheduler is lost (a deployment restarts them).
            cluster.close()
            cluster.start()
            sc.log.append("cluster start, scheduler SIGKILL, restart")
            _after_fault(sc, before)
    finally:
        cluster.close()


def run_cluster_faults(
    seed: int, worker: int, scheduler: int, stats: FaultStats, workdir: Path
) -> None:
    """``worker`` worker kills and ``scheduler`` scheduler kills on one random scenario."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        stats.skipped.append("cluster faults: distributed is not installed (the dask extra)")
        return
    sc = Scenario(seed, workdir / "cluster", max_tasks=20)
    try:
        sc.check()
        if worker:
            worker_kills(sc, worker, stats, workdir)
        if scheduler:
            scheduler_kills(sc, scheduler, stats, workdir)
    finally:
        sc.close()
