"""Real Dask clusters on 127.0.0.1: ``dask scheduler`` and ``dask worker`` processes.

Every process runs in a session of its own and is killed (with its group) when
its test ends. Waits are bounded: a scheduler has written its address file,
the scheduler knows the expected number of workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests_support import DEADLINE, wait_for

pytest.importorskip("distributed")

DASK = Path(sys.executable).with_name("dask")


class DaskCluster:
    """A scheduler and its workers, each a real process (group) of its own."""

    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = base / "scheduler.json"
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def _spawn(self, argv: Sequence[str], log: str) -> subprocess.Popen[bytes]:
        out = open(self.base / log, "ab")  # noqa: SIM115 (the child keeps it)
        try:
            return subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={k: v for k, v in os.environ.items() if not k.startswith("E3_")},
            )
        finally:
            out.close()

    def start_scheduler(self) -> str:
        """Start ``dask scheduler`` on a free port of 127.0.0.1; returns its address."""
        self.scheduler_file.unlink(missing_ok=True)
        self.scheduler = self._spawn(
            [
                str(DASK),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(self.scheduler_file),
            ],
            "scheduler.log",
        )

        def address() -> str | None:
            try:
                return str(json.loads(self.scheduler_file.read_text())["address"])
            except (OSError, ValueError, KeyError):
                return None

        self.address = wait_for(address, "the scheduler's address file", proc=self.scheduler)
        return self.address

    def start_worker(
        self, *, prefix: Sequence[str] = (), preload: Path | None = None, name: str = ""
    ) -> subprocess.Popen[bytes]:
        """Start one ``dask worker`` (one process, one thread, with a nanny)."""
        argv = [
            *prefix,
            str(DASK),
            "worker",
            self.address,
            "--nthreads",
            "1",
            "--nworkers",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            "--local-directory",
            str(self.base / "workers"),
        ]
        if name:
            argv += ["--name", name]
        if preload is not None:
            argv += ["--preload", str(preload)]
        proc = self._spawn(argv, f"worker-{len(self.workers)}.log")
        self.workers.append(proc)
        return proc

    def wait_workers(self, count: int, timeout: float = DEADLINE) -> None:
        """Until the scheduler knows ``count`` workers."""
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout)

    def worker_pids(self) -> dict[str, int]:
        """Address → pid of each worker process the scheduler knows."""
        from distributed import Client

        with Client(self.address, timeout=DEADLINE, set_as_default=False) as client:
            pids: dict[str, int] = client.run(os.getpid)
        return pids

    def kill_scheduler(self) -> None:
        """SIGKILL the scheduler."""
        if self.scheduler is not None:
            _kill_group(self.scheduler)

    def stop(self) -> None:
        """Kill every process (and group) this cluster started."""
        for proc in [*self.workers, *([self.scheduler] if self.scheduler else [])]:
            _kill_group(proc)
        self.workers.clear()
        self.scheduler = None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(DEADLINE)


def start_cluster(base: Path, workers: int, **worker_options: object) -> DaskCluster:
    """A scheduler with ``workers`` workers, all known to it."""
    cluster = DaskCluster(base)
    try:
        cluster.start_scheduler()
        for _ in range(workers):
            cluster.start_worker(**worker_options)  # type: ignore[arg-type]
        cluster.wait_workers(workers)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A scheduler with two workers, shared by the tests that do not break it."""
    cluster = start_cluster(tmp_path_factory.mktemp("dask"), 2)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    """A cluster of this test alone (scheduler started, no workers yet)."""
    cluster = DaskCluster(tmp_path / "dask")
    try:
        yield cluster
    finally:
        cluster.stop()
