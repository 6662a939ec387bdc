"""Fault injection: kill engines, tasks and servers; fill the disk; make files unreadable.

Each fault runs against a repository holding a random package (:mod:`fuzz.model`)
and is followed by the same checks:

* ``verify`` finds no problem: no object lost, torn or renamed, every ref resolves;
* every (task, inputs) that had a successful execution before the fault still has
  it, and the next ``start`` runs none of them again (no finished work is redone);
* after that ``start``, every output equals the oracle's value for the current inputs.

Faults: SIGKILL of ``e3 start`` at a random moment (the main figure); SIGKILL of a
running task's process; SIGKILL of an API server running a dataflow, then a
restart; a repository on a small tmpfs filled until writes fail with ENOSPC
(skipped where mounting is not permitted); files the command may not read
(as an unprivileged user when run as root).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz.scenario import E3, Scenario, Server, Violation, _env


@dataclass
class FaultStats:
    """What a fault-injection session did."""

    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n


#: (task hash, inputs hash) -> (number of attempts, whether one succeeded)
Attempts = dict[tuple[str, str], tuple[int, bool]]


def _attempts(sc: Scenario) -> Attempts:
    """(task hash, inputs hash) -> (number of attempts, whether one succeeded)."""
    from e3.core import executions

    out: dict[tuple[str, str], tuple[int, bool]] = {}
    root = sc.repo.executions_dir
    if not root.is_dir():
        return out
    from e3.base.names import is_hash

    for th in os.listdir(root):
        if not is_hash(th):
            continue  # lock files
        for ih in os.listdir(root / th):
            if not is_hash(ih):
                continue
            ids = executions.execution_ids(sc.repo, th, ih)
            ok = executions.cached_output(sc.repo, th, ih) is not None
            out[(th, ih)] = (len(ids), ok)
    return out


def _after_fault(sc: Scenario, before: Attempts) -> None:
    """The checks every fault is followed by (see the module docstring)."""
    from e3.core.verify import verify

    report = verify(sc.repo, sc.verify_cache)
    if report.problems:
        raise sc.fail("after the fault, verify: " + "; ".join(report.problems[:5]))
    now = _attempts(sc)
    lost = [k for k, (_n, ok) in before.items() if ok and not now.get(k, (0, False))[1]]
    if lost:
        raise sc.fail(f"{len(lost)} finished execution(s) lost their result")
    sc.check()  # settles every workspace and compares with the oracle
    after = _attempts(sc)
    redone = [k for k, (n, ok) in before.items() if ok and after[k][0] != n]
    if redone:
        raise sc.fail(f"{len(redone)} finished task(s) ran again after the fault")


def _dirty(sc: Scenario, count: int) -> None:
    """Change a few inputs so that the next run has work to do."""
    for _ in range(count):
        name = sc.rng.choice(list(sc.values["ws"]))
        sc._set("ws", name, sc._random_value(name))


def engine_kills(
    sc: Scenario, kills: int, stats: FaultStats, *, window: float = 1.0, aimed: float = 0.8
) -> None:
    """SIGKILL ``e3 start`` at random moments until ``kills`` of them hit a live engine.

    A fraction ``aimed`` of the kills is aimed at the window where tasks run: the
    engine's ``--json`` events are read and the kill comes at a random delay (up to
    0.3 s) after the first ``task_started``; the rest come at a random instant in
    the first ``window`` seconds (start-up, planning, publishing). A start that
    ended before its kill moment is checked all the same but not counted as a kill
    (it is reported apart): the figure is kills of a running engine.
    """
    done = 0
    while done < kills:
        _dirty(sc, sc.rng.randint(1, 3))
        before = _attempts(sc)
        concurrency = str(sc.rng.choice([1, 4]))
        proc = subprocess.Popen(
            [E3, "start", str(sc.repo.root), "ws", "--json", "--concurrency", concurrency],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_env(),
        )
        watcher = _TaskStartWatcher(proc)
        if sc.rng.random() < aimed:
            # the fault: a kill while tasks run (if the run gets that far within 10 s)
            watcher.started_or_over.wait(10)
            time.sleep(sc.rng.uniform(0, 0.3))
        else:
            time.sleep(sc.rng.uniform(0, window))  # the fault: a kill at a random instant
        alive = proc.poll() is None
        began = watcher.started.is_set()
        proc.kill()
        code = proc.wait()
        watcher.join()
        hit = alive and code == -signal.SIGKILL
        sc.log.append("start, SIGKILL" if hit else f"start ended ({code}) before its kill")
        _after_fault(sc, before)
        if hit:
            done += 1
            stats.add("engine SIGKILL (engine running)")
            if began:
                stats.add("  of which after tasks had started")
        else:
            stats.add("engine start ended before its kill")


class _TaskStartWatcher(threading.Thread):
    """Reads a ``start --json`` event stream (so it never blocks) and notes the first task."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.started = threading.Event()
        self.started_or_over = threading.Event()  # a task started, or the output ended
        self.start()

    def run(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout as events:
            for line in events:
                if b'"task_started"' in line:
                    self.started.set()
                    self.started_or_over.set()
        self.started_or_over.set()


def task_kills(sc: Scenario, kills: int, stats: FaultStats, marker_dir: Path) -> None:
    """SIGKILL a task's process while it runs; the run reports it failed, the next one redoes it."""
    from east import IntegerType

    import e3
    from e3.core import package_zip, workspaces
    from e3.dataflow.scheduler import run_dataflow
    from e3.model.runs import StartOptions
    from e3.sdk import export

    marker_dir.mkdir(parents=True, exist_ok=True)
    x = e3.input("x", IntegerType, default=0)
    pid_file = marker_dir / "task.pid"
    slow = e3.custom_task(
        "victim",
        [x],
        IntegerType,
        f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}; sleep 30; "
        "cp {inputs[0]} {output}",
    )
    after = e3.custom_task("after", [slow], IntegerType, "cp {inputs[0]} {output}")
    zip_path = marker_dir / "victim.zip"
    export(e3.package("victim", "1.0.0", after), zip_path)
    package_zip.import_package(sc.repo, zip_path)
    workspaces.deploy(sc.repo, "victim", "victim")
    for i in range(kills):
        pid_file.unlink(missing_ok=True)
        from e3.codec import beast2
        from e3.core import datasets

        datasets.set_dataset_bytes(
            sc.repo, "victim", ("inputs", "x"), beast2.encode(i, IntegerType)
        )

        async def run_and_kill() -> Any:
            import asyncio

            task = asyncio.ensure_future(
                run_dataflow(sc.repo, "victim", StartOptions(), registry=sc.registry)
            )
            deadline = time.monotonic() + 30
            while not pid_file.exists():
                if task.done() or time.monotonic() > deadline:
                    raise sc.fail("the victim task never started")
                await asyncio.sleep(0.01)
            await asyncio.sleep(sc.rng.uniform(0, 0.2))
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
            return await task

        outcome = sc.loop.run_until_complete(run_and_kill())
        if outcome.status != "failed" or [p.name for p in outcome.failed] != ["victim"]:
            raise sc.fail(f"a killed task must fail its run: {outcome.status} {outcome.failed}")
        stats.add("task SIGKILL")
    workspaces.remove_workspace(sc.repo, "victim")
    from e3.core.verify import verify

    report = verify(sc.repo, sc.verify_cache)
    if report.problems:
        raise sc.fail("after task kills, verify: " + "; ".join(report.problems[:5]))


def server_kills(seed: int, kills: int, stats: FaultStats, workdir: Path) -> None:
    """SIGKILL an API server while it runs a dataflow, restart it, check and resume."""
    from e3.base.config import load_settings
    from e3.client.remote import open_remote

    served = workdir / "served"
    server = Server.start(served)
    sc = Scenario(seed, workdir / "scenario", server=server)
    try:
        for _ in range(kills):
            _dirty(sc, sc.rng.randint(1, 3))
            before = _attempts(sc)
            proc = subprocess.Popen(
                [E3, "start", f"{server.url}/repos/{sc.repo_name}", "ws"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=_env(),
            )
            time.sleep(sc.rng.uniform(0.1, 1.0))  # the fault: the server dies mid-run
            server.proc.kill()
            server.proc.wait()
            proc.wait(60)
            sc.remote.close()
            server = Server.start(served)
            sc.server = server
            sc.remote = open_remote(f"{server.url}/repos/{sc.repo_name}", load_settings({}))
            sc.log.append("server SIGKILL during a remote start")
            # Resume through the new server, then the usual checks.
            sc.remote.start("ws", keep_going=True).wait()
            _after_fault(sc, before)
            stats.add("server SIGKILL")
    finally:
        sc.close()
        server.stop()


def full_disk(seed: int, stats: FaultStats, workdir: Path, *, steps: int = 40) -> None:
    """A repository on a 4 MiB tmpfs: fill it until writes fail, check nothing tore."""
    mount = workdir / "small-fs"
    mount.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if r.returncode != 0:
        stats.skipped.append(f"full disk: cannot mount a tmpfs ({r.stderr.decode().strip()})")
        return
    try:
        _fill(seed, mount, stats, steps)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(seed: int, mount: Path, stats: FaultStats, steps: int) -> None:
    from east import BlobType as EastBlob
    from east import East, IntegerType

    import e3
    from e3.codec import beast2
    from e3.codec.types import BlobType
    from e3.sdk import export

    rng = random.Random(seed)
    blob = e3.input("blob", EastBlob, default=b"")
    size = e3.task("size", [blob], East.function([EastBlob], IntegerType, lambda b, v: v.size()))
    copy = e3.custom_task("copy", [blob], EastBlob, "cp {inputs[0]} {output}")
    zip_path = mount.parent / "disk.zip"
    export(e3.package("disk", "1.0.0", size, copy), zip_path)
    repo = mount / "repo"

    def e3cmd(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([E3, *args], capture_output=True, env=_env(), check=False)

    for args in (
        ("repo", "create", str(repo)),
        ("package", "import", str(repo), str(zip_path)),
        ("workspace", "deploy", str(repo), "ws", "disk"),
    ):
        res = e3cmd(*args)
        if res.returncode != 0:
            raise Violation(f"full disk set-up {args}: {res.stderr.decode()}")
    last_ok: bytes | None = None
    refusals = 0
    for i in range(steps):
        data = os.urandom(rng.randint(300_000, 900_000))
        f = mount.parent / "value.beast2"
        f.write_bytes(beast2.encode(data, BlobType))
        res = e3cmd("set", str(repo), "ws.inputs.blob", str(f))
        err = res.stderr.decode(errors="replace")
        if res.returncode == 0:
            last_ok = data
        elif res.returncode == 10 and "no space left" in err.lower() and "Traceback" not in err:
            refusals += 1
            stats.add("ENOSPC refused cleanly")
        else:
            raise Violation(f"full disk: set exited {res.returncode}: {err}")
        run = e3cmd("start", str(repo), "ws")
        rerr = run.stderr.decode(errors="replace")
        if run.returncode not in (0, 1, 10) or "Traceback" in rerr:
            raise Violation(f"full disk: start exited {run.returncode}: {rerr}")
        check = e3cmd("repo", "verify", str(repo))
        if check.returncode != 0:
            raise Violation(f"full disk: verify after step {i}: {check.stdout.decode()}")
        got = e3cmd("get", str(repo), "ws.inputs.blob", "-f", "beast2")
        if got.returncode != 0:
            raise Violation(f"full disk: the last value no longer reads: {got.stderr.decode()}")
        if last_ok is not None and beast2.decode(got.stdout, BlobType) != last_ok:
            raise Violation("full disk: the dataset does not hold the last value set")
        if refusals and rng.random() < 0.3:
            e3cmd("repo", "gc", str(repo), "--min-age", "0")
        stats.add("full-disk steps")
    if refusals == 0:
        stats.notes.append("full disk: the disk never filled up")


def unreadable(seed: int, stats: FaultStats, workdir: Path, *, files: int = 8) -> None:
    """Commands on files they may not read fail with one clear line and change nothing.

    As root, permission bits do not apply, so the commands run without the
    capabilities that bypass them (``setpriv``); where that is unavailable the
    check is skipped.
    """
    import hashlib
    import shutil as sh

    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = sh.which("setpriv")
        if setpriv is None:
            stats.skipped.append("unreadable files: running as root without setpriv")
            return
        drop = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}"]
    sc = Scenario(seed, workdir / "unreadable")
    try:
        sc.check()
        root = sc.repo.root

        def digest() -> str:
            h = hashlib.sha256()
            for dirpath, _dirs, files in sorted(os.walk(root)):
                for name in sorted(files):
                    p = Path(dirpath) / name
                    h.update(str(p).encode())
                    h.update(p.read_bytes())
            return h.hexdigest()

        last = _quote(sc.spec.tasks[-1].name)
        targets = sorted(root.glob("workspaces/*.beast2"))
        targets += sorted(root.glob("workspaces/*/data/tasks/*/*.ref"))[:2]
        targets += sorted(root.glob("objects/*/*.beast2"))
        targets = targets[:files]
        read_only = [
            ("get", str(root), f"ws.tasks.{last}"),
            ("repo", "verify", str(root)),
            ("list", str(root), "ws", "-r", "-l"),
        ]
        writing = [
            ("start", str(root), "ws", "--force"),
            ("workspace", "export", str(root), "ws", str(workdir / "x.zip")),
        ]
        for target in targets:
            mode = target.stat().st_mode & 0o777
            os.chmod(target, 0)
            before = digest()
            for args in read_only + writing:
                res = subprocess.run(
                    [*prefix, E3, *args], capture_output=True, env=_env(), check=False
                )
                err = res.stderr.decode(errors="replace")
                if "Traceback" in err or res.returncode == 70 or res.returncode < 0:
                    raise Violation(f"unreadable {target.name}: e3 {args[0]} crashed: {err}")
                lines = [x for x in err.splitlines() if x.strip()]
                task_failed = args[0] == "start" and res.returncode == 1 and not lines
                if res.returncode != 0 and len(lines) != 1 and not task_failed:
                    raise Violation(f"unreadable {target.name}: e3 {args[0]} said: {err!r}")
                if args in read_only and digest() != before:
                    raise Violation(f"unreadable {target.name}: e3 {args[0]} changed the repo")
                stats.add("commands on unreadable files")
            os.chmod(target, mode)
            sc.log.append(f"commands with {target.name} unreadable")
            sc.check()  # once readable again: whole, and every value right
    finally:
        sc.close()


def _quote(name: str) -> str:
    from e3.base.paths import format_keypath

    return format_keypath((name,)).lstrip(".")


def run_faults(
    seed: int,
    kills: int,
    workdir: Path,
    *,
    quick: bool,
    worker_kills: int = 0,
    scheduler_kills: int = 0,
    only_cluster: bool = False,
) -> FaultStats:
    """Every fault kind, with ``kills`` engine kills (and Dask worker and scheduler kills)."""
    from fuzz.cluster_faults import run_cluster_faults

    stats = FaultStats()
    if not only_cluster:
        sc = Scenario(seed, workdir / "engine", max_tasks=30)
        try:
            sc.check()
            engine_kills(sc, kills, stats)
            task_kills(sc, 3 if quick else 30, stats, workdir / "markers")
        finally:
            sc.close()
        server_kills(seed + 1, 2 if quick else 30, stats, workdir / "server")
        full_disk(seed, stats, workdir / "disk", steps=8 if quick else 40)
        unreadable(seed, stats, workdir, files=2 if quick else 12)
    run_cluster_faults(seed + 2, worker_kills, scheduler_kills, stats, workdir / "cluster")
    return stats


if __name__ == "__main__":  # pragma: no cover - use python -m fuzz faults
    sys.exit("use: python -m fuzz faults")
