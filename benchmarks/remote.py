"""The HTTP API: remote ``e3 get`` against local, reads per second, remote dataflows.

A real ``e3-api-server`` runs on 127.0.0.1 (a random port) over a temporary
directory. Rows:

* ``e3 get`` of a small dataset as a whole CLI process, local path vs server URL
  (the ratio is what a user feels);
* small dataset reads per second over one keep-alive connection, and with four
  client threads (raw HTTP, Python client), against a local library call;
* a 100-task East chain started remotely (the server's warm worker pool is
  already running for the second workspace) against the same run local.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.harness import BIN, E3, ROOT, e3, env, median_of, ms, table, wall

sys.path.insert(0, str(ROOT / "examples"))


class _Server:
    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "e3-api-server"), "--repos", str(root), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if "listening on " not in line:
            self.proc.kill()
            raise RuntimeError(f"e3-api-server did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[1]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _reads_per_second(url: str, seconds: float, threads: int) -> float:
    import httpx

    count = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        with httpx.Client() as client:
            while time.perf_counter() < stop:
                r = client.get(url)
                r.raise_for_status()
                count[i] += 1

    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(count) / (time.perf_counter() - t0)


def _per_call(fn: object, repeat: int) -> float:
    assert callable(fn)
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(*, quick: bool, sizes: str | None = None) -> None:
    del sizes
    repeat = 5 if quick else 30
    window = 0.5 if quick else 3.0
    chain = 10 if quick else 100
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        served = tmp / "served"
        served.mkdir()
        zip_path = tmp / "hello.zip"
        e3("package", "build", ROOT / "examples" / "hello.py", "-o", zip_path)
        local = tmp / "local"
        for repo in (local, served / "bench"):
            e3("repo", "create", repo)
            e3("package", "import", repo, zip_path)
            e3("workspace", "deploy", repo, "ws", "hello")
        server = _Server(served)
        try:
            remote = f"{server.url}/repos/bench"
            get_local = median_of([E3, "get", str(local), "ws.inputs.x"], repeat)
            get_remote = median_of([E3, "get", remote, "ws.inputs.x"], repeat)
            url = f"{server.url}/api/repos/bench/workspaces/ws/datasets/inputs/x"
            rps1 = _reads_per_second(url, window, 1)
            rps4 = _reads_per_second(url, window, 4)

            from e3.api.local import LocalRepository
            from e3.base.config import load_settings
            from e3.client.remote import open_remote
            from e3.store.repository import open_repository

            svc = open_remote(remote, load_settings({}))
            lib_remote = _per_call(lambda: svc.dataset_get("ws", ("inputs", "x")), repeat * 10)
            svc.close()
            lsvc = LocalRepository(open_repository(local))
            lib_local = _per_call(lambda: lsvc.dataset_get("ws", ("inputs", "x")), repeat * 10)

            import fanout

            from e3.sdk import export

            chain_zip = tmp / "chain.zip"
            export(fanout.make(chain, "chain"), chain_zip)
            for repo in (local, served / "bench"):
                e3("package", "import", repo, chain_zip)
                for ws in ("c1", "c2"):
                    e3("workspace", "deploy", repo, ws, f"chain{chain}")
            start_local = wall([E3, "start", str(local), "c1"])
            wall([E3, "start", remote, "c1"])  # the server's warm pool starts here
            start_remote = wall([E3, "start", remote, "c2"])
        finally:
            server.stop()
    table(
        ["measure", "local", "remote", "remote / local"],
        [
            [
                "e3 get (whole CLI process)",
                ms(get_local),
                ms(get_remote),
                f"{get_remote / get_local:.2f}",
            ],
            [
                "dataset_get (library call)",
                ms(lib_local),
                ms(lib_remote),
                f"{lib_remote / lib_local:.2f}",
            ],
            [
                f"e3 start, {chain}-task chain, first run",
                ms(start_local),
                ms(start_remote),
                f"{start_remote / start_local:.2f}",
            ],
        ],
    )
    print()
    table(
        ["small dataset reads over HTTP", "requests/s"],
        [
            ["1 client, keep-alive", f"{rps1:.0f}"],
            ["4 client threads", f"{rps4:.0f}"],
            ["(local library call, 1 thread)", f"{1 / lib_local:.0f}"],
        ],
    )
