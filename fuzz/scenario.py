"""The scenario fuzzer: random packages, random operations, invariants after every step.

For each seed a fresh repository gets a random package (:mod:`fuzz.model`) deployed
in workspace ``ws``; then a random sequence of operations runs against it: sets,
starts (plain, filtered, forced), starts as real ``e3`` processes, two starts at
once, sets while a run is going, runs of two workspaces at once (single-flight),
deploys of a new version, export/import round trips, garbage collection, Ctrl-C
and SIGKILL of a running engine. After every operation:

* ``verify`` finds no problem (every object hashes to its name, every ref resolves,
  nothing reachable is missing), so in particular gc never deleted reachable data;
* the workspace is settled (``start --keep-going``), and then every task output
  equals the oracle's value for the current inputs, computed without e3, and
  every task the oracle says fails is reported failed (never up to date);
* a command that lost a race for a lock failed with the lock error, nothing else;
* an interrupted ``e3 start`` ended as :mod:`fuzz.interrupts` allows: "Interrupted." and
  exit 130, or finished normally, or died in Python's own start-up with the repository's
  tree unchanged and no traceback through e3's code.

Everything is reproducible from the seed; a violation raises :class:`Violation`
naming the seed, the step and the operations so far.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fuzz.interrupts import RuleBroken, tree_digest
from fuzz.interrupts import judge as judge_interrupt
from fuzz.model import FAIL, PackageSpec, random_package

E3 = str(Path(sys.executable).with_name("e3"))


class Violation(AssertionError):
    """An invariant did not hold."""


@dataclass
class Stats:
    """What a fuzzing session did."""

    seeds: int = 0
    operations: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    tasks_checked: int = 0
    seconds: float = 0.0

    def add(self, other: Stats) -> None:
        self.seeds += other.seeds
        self.operations += other.operations
        self.tasks_checked += other.tasks_checked
        self.seconds += other.seconds
        for k, v in other.by_kind.items():
            self.by_kind[k] = self.by_kind.get(k, 0) + v


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("E3_")}
    env["E3_FSYNC"] = "0"
    return env


class Scenario:
    """One seed: a repository, a package spec, the oracle's view of the inputs."""

    def __init__(
        self, seed: int, workdir: Path, *, max_tasks: int = 12, server: Server | None = None
    ) -> None:
        from e3.runners.registry import default_registry
        from e3.store.repository import create_repository

        self.seed = seed
        self.rng = random.Random(seed)
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.repo_name = f"seed{seed}"
        root = server.root / self.repo_name if server is not None else workdir / "repo"
        self.repo, _ = create_repository(root, durable=False)
        self.remote: Any = None
        if server is not None:
            from e3.base.config import load_settings
            from e3.client.remote import open_remote

            self.remote = open_remote(f"{server.url}/repos/{self.repo_name}", load_settings({}))
        self.spec: PackageSpec = random_package(self.rng, max_tasks=max_tasks)
        self.values: dict[str, dict[str, Any]] = {}  # workspace -> input values
        self.log: list[str] = []
        self.stats = Stats(seeds=1)
        self.loop = asyncio.new_event_loop()
        self.registry = default_registry(isolation="warm", max_workers=2)
        self.versions = 1
        from e3.core.verify import VerifyCache

        self.verify_cache = VerifyCache()
        self._zip(self.spec)
        self._deploy("ws")

    def close(self) -> None:
        """Stop the warm workers and the event loop; close the API connection."""
        self.loop.run_until_complete(self.registry.close())
        self.loop.close()
        if self.remote is not None:
            self.remote.close()

    # ── helpers ─────────────────────────────────────────────────────────
    def fail(self, message: str) -> Violation:
        tail = "\n".join(f"  {i}: {op}" for i, op in list(enumerate(self.log))[-15:])
        return Violation(f"seed {self.seed}, step {len(self.log)}: {message}\nlast steps:\n{tail}")

    def _zip(self, spec: PackageSpec) -> Path:
        from e3.core import package_zip
        from e3.sdk import export

        path = self.workdir / f"{spec.name}-{spec.version}.zip"
        if not path.exists():
            export(spec.build(), path)
            package_zip.import_package(self.repo, path)
        return path

    def _deploy(self, ws: str) -> None:
        from e3.core import workspaces

        workspaces.deploy(self.repo, ws, f"{self.spec.name}@{self.spec.version}")
        self.values[ws] = self.spec.defaults()

    def _start(self, ws: str, **options: Any) -> Any:
        from e3.dataflow.scheduler import run_dataflow
        from e3.model.runs import StartOptions

        opts = StartOptions(concurrency=4, **options)
        return self.loop.run_until_complete(
            run_dataflow(self.repo, ws, opts, registry=self.registry)
        )

    def _set(self, ws: str, name: str, value: Any) -> None:
        from east import ArrayType, IntegerType

        from e3.codec import beast2
        from e3.core import datasets

        t = ArrayType(IntegerType) if name == self.spec.big_input else IntegerType
        datasets.set_dataset_bytes(self.repo, ws, ("inputs", name), beast2.encode(value, t))
        self.values[ws][name] = value

    def _bytes(self, ws: str, path: tuple[str, ...]) -> bytes | None:
        from e3.core import datasets
        from e3.errors import DatasetUnassigned

        try:
            return datasets.get_dataset(self.repo, ws, path)[1]
        except DatasetUnassigned:
            return None

    def _random_value(self, name: str) -> Any:
        if name == self.spec.big_input:
            n = len(self.spec.big_default)
            return [self.rng.randint(0, 1000) for _ in range(self.rng.choice([0, 1, n]))]
        return self.rng.randint(0, 1000)

    def _cli(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [E3, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )

    def _finish(self, proc: subprocess.Popen[bytes], allowed: set[int], what: str) -> int:
        return self._judge(proc, self._stderr_at_exit(proc, what), allowed, what)

    def _stderr_at_exit(self, proc: subprocess.Popen[bytes], what: str) -> str:
        return self._output_at_exit(proc, what)[1]

    def _output_at_exit(self, proc: subprocess.Popen[bytes], what: str) -> tuple[str, str]:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise self.fail(f"{what}: did not end within 120 s") from None
        return out.decode(errors="replace"), err.decode(errors="replace")

    def _judge(self, proc: subprocess.Popen[bytes], text: str, allowed: set[int], what: str) -> int:
        if proc.returncode not in allowed:
            raise self.fail(f"{what}: exit {proc.returncode} (allowed {sorted(allowed)}): {text}")
        if proc.returncode == 4 and "locked" not in text:
            raise self.fail(f"{what}: exit 4 without a lock error: {text}")
        if "Traceback" in text:
            raise self.fail(f"{what}: traceback on stderr: {text}")
        return proc.returncode

    # ── invariants ──────────────────────────────────────────────────────
    def check(self) -> None:
        """Verify the repository, settle every workspace, compare with the oracle."""
        from e3.codec import beast2
        from e3.core import datasets
        from e3.core.verify import verify
        from e3.dataflow.status import workspace_status

        report = verify(self.repo, self.verify_cache)
        if report.problems:
            raise self.fail("verify: " + "; ".join(report.problems[:5]))
        for ws, values in self.values.items():
            self._start(ws, keep_going=True)
            expected = self.spec.expected(values)
            states = {t.name: t.state for t in workspace_status(self.repo, ws).tasks}
            for task, want in expected.items():
                self.stats.tasks_checked += 1
                if want == FAIL:
                    if states[task] not in ("failed", "error"):
                        raise self.fail(f"{ws}: task {task!r} must fail, status {states[task]}")
                    continue
                if isinstance(want, str):  # SKIP: something upstream failed
                    if states[task] == "up-to-date":
                        raise self.fail(f"{ws}: {task!r} is up to date though an input failed")
                    continue
                t, data = datasets.get_dataset(self.repo, ws, ("tasks", task, "output"))
                got = beast2.decode(data, t) if data is not None else None
                if got != want or states[task] != "up-to-date":
                    raise self.fail(
                        f"{ws}: task {task!r} holds {got!r} ({states[task]}), oracle says {want}"
                    )

    # ── operations ──────────────────────────────────────────────────────
    def op_set(self) -> str:
        ws = self.rng.choice(list(self.values))
        name = self.rng.choice(list(self.values[ws]))
        value = self._random_value(name)
        self._set(ws, name, value)
        return f"set {ws}.inputs.{name} = {_short(value)}"

    def op_start(self) -> str:
        ws = self.rng.choice(list(self.values))
        options: dict[str, Any] = {}
        if self.rng.random() < 0.2:
            options["filters"] = (self.rng.choice(self.spec.tasks).name,)
        if self.rng.random() < 0.1:
            options["force"] = True
        if self.rng.random() < 0.5:
            options["keep_going"] = True
        out = self._start(ws, **options)
        return f"start {ws} {options} -> {out.status}"

    def op_cli_start(self) -> str:
        code = self._finish(self._cli("start", str(self.repo.root), "ws"), {0, 1}, "e3 start")
        expected = self.spec.expected(self.values["ws"])
        if code == 0 and FAIL in expected.values():
            raise self.fail("e3 start exited 0 though a task must fail")
        return f"cli start ws -> {code}"

    def op_concurrent_starts(self) -> str:
        a = self._cli("start", str(self.repo.root), "ws")
        b = self._cli("start", str(self.repo.root), "ws")
        codes = (self._finish(a, {0, 1, 4}, "start A"), self._finish(b, {0, 1, 4}, "start B"))
        if codes == (4, 4):
            raise self.fail("both concurrent starts were refused")
        return f"two concurrent starts -> {codes}"

    def op_set_during_start(self) -> str:
        proc = self._cli("start", str(self.repo.root), "ws")
        sets = []
        for _ in range(self.rng.randint(1, 4)):
            time.sleep(self.rng.uniform(0, 0.05))  # fault-injection timing, not a wait
            name = self.rng.choice(list(self.values["ws"]))
            value = self._random_value(name)
            self._set("ws", name, value)
            sets.append(f"{name}={_short(value)}")
        code = self._finish(proc, {0, 1}, "start with sets during it")
        return f"start with sets during it ({', '.join(sets)}) -> {code}"

    def op_two_workspaces(self) -> str:
        from e3.dataflow.scheduler import run_dataflow
        from e3.model.runs import StartOptions

        if "ws2" not in self.values:
            self._deploy("ws2")
        for ws in ("ws", "ws2"):
            for name in self.values[ws]:
                if self.rng.random() < 0.5:
                    self._set(ws, name, self._random_value(name))

        async def both() -> list[Any]:
            opts = StartOptions(keep_going=True)
            return list(
                await asyncio.gather(
                    run_dataflow(self.repo, "ws", opts, registry=self.registry),
                    run_dataflow(self.repo, "ws2", opts, registry=self.registry),
                )
            )

        outs = self.loop.run_until_complete(both())
        return f"ws and ws2 at once -> {[o.status for o in outs]}"

    def op_deploy_new_version(self) -> str:
        self.versions += 1
        self.spec = self.spec.mutated(self.rng, f"1.0.{self.versions}")
        self._zip(self.spec)
        ws = self.rng.choice(list(self.values))
        self._deploy(ws)
        for other in self.values:
            if other != ws:
                self._deploy(other)
        return f"deploy {self.spec.version} (all workspaces reset to its defaults)"

    def op_export_import(self) -> str:
        from e3.core import package_zip, workspace_zip, workspaces

        out = self.workdir / "roundtrip.zip"
        if self.rng.random() < 0.5:
            package_zip.export_package(self.repo, f"{self.spec.name}@{self.spec.version}", out)
            original = self.workdir / f"{self.spec.name}-{self.spec.version}.zip"
            if out.read_bytes() != original.read_bytes():
                raise self.fail("package export differs from the zip it was imported from")
            return "package export (byte-identical)"
        version = f"{self.spec.version}-copy{len(self.log)}"
        workspace_zip.export_workspace(self.repo, "ws", out, version=version)
        workspace_zip.import_workspace(self.repo, "copy", out)
        paths = [("inputs", n) for n in self.values["ws"]]
        paths += [("tasks", t.name, "output") for t in self.spec.tasks]
        for path in paths:
            if self._bytes("ws", path) != self._bytes("copy", path):
                raise self.fail(f"workspace export/import changed {'.'.join(path)!r}")
        workspaces.remove_workspace(self.repo, "copy")
        return f"workspace export/import as {version} (identical data)"

    def op_gc(self) -> str:
        from e3.core import gc
        from e3.model.retention import GcPolicy

        res = gc.collect(self.repo, GcPolicy(min_age_seconds=0.0))
        return f"gc -> deleted {res.deleted_objects}, kept {res.retained_objects}"

    def op_cancel(self) -> str:
        before = tree_digest(self.repo.root)
        proc = self._cli("start", str(self.repo.root), "ws")
        delay = self.rng.uniform(0, 0.4)
        time.sleep(delay)  # fault injection: interrupt at a random moment
        proc.send_signal(signal.SIGINT)
        what = f"start interrupted by SIGINT after {delay * 1000:.0f} ms"
        out, err = self._output_at_exit(proc, what)
        try:
            kind = judge_interrupt(
                proc.returncode,
                out,
                err,
                tree_changed=tree_digest(self.repo.root) != before,
                normal={0, 1},
            )
        except RuleBroken as exc:
            raise self.fail(f"{what}: {exc}") from None
        key = f"cancel: {kind}"
        self.stats.by_kind[key] = self.stats.by_kind.get(key, 0) + 1
        return f"start, SIGINT after {delay * 1000:.0f} ms -> {proc.returncode} ({kind})"

    def op_kill(self) -> str:
        proc = self._cli("start", str(self.repo.root), "ws")
        time.sleep(self.rng.uniform(0, 0.4))  # fault injection: kill at a random moment
        proc.kill()
        proc.communicate()
        return "start, SIGKILL"

    # ── the same through the HTTP API (a real server over the same repository) ──
    def op_api_set(self) -> str:
        from east import ArrayType, IntegerType

        from e3.codec import beast2

        name = self.rng.choice(list(self.values["ws"]))
        value = self._random_value(name)
        t = ArrayType(IntegerType) if name == self.spec.big_input else IntegerType
        self.remote.dataset_set("ws", ("inputs", name), beast2.encode(value, t))
        self.values["ws"][name] = value
        return f"API set ws.inputs.{name} = {_short(value)}"

    def op_api_start(self) -> str:
        from e3.errors import LockConflict

        try:
            out = self.remote.start("ws", keep_going=True).wait()
        except LockConflict as exc:  # only if something else holds the workspace
            raise self.fail(f"API start refused: {exc.message}") from exc
        return f"API start ws -> {out.status}"

    def op_api_gc(self) -> str:
        from e3.model.retention import GcPolicy

        res = self.remote.gc(GcPolicy(min_age_seconds=0.0))
        return f"API gc -> deleted {res.deleted_objects}"

    def op_api_export_import(self) -> str:
        out = self.workdir / "api-export.zip"
        self.remote.package_export(f"{self.spec.name}@{self.spec.version}", out)
        original = self.workdir / f"{self.spec.name}-{self.spec.version}.zip"
        if out.read_bytes() != original.read_bytes():
            raise self.fail("API package export differs from the imported zip")
        self.remote.package_import(out)  # same content: accepted, nothing changes
        return "API package export + re-import (byte-identical)"

    OPERATIONS: ClassVar[list[tuple[str, float]]] = [
        ("set", 30),
        ("start", 20),
        ("cli_start", 4),
        ("concurrent_starts", 3),
        ("set_during_start", 4),
        ("two_workspaces", 4),
        ("deploy_new_version", 4),
        ("export_import", 5),
        ("gc", 5),
        ("cancel", 3),
        ("kill", 2),
        ("api_set", 4),
        ("api_start", 4),
        ("api_gc", 1),
        ("api_export_import", 1),
    ]

    def step(self, kinds: list[str], weights: list[float]) -> None:
        kind = self.rng.choices(kinds, weights)[0]
        op: Callable[[], str] = getattr(self, f"op_{kind}")
        self.log.append(f"{kind}: (running)")
        self.log[-1] = op()
        self.stats.operations += 1
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        self.check()


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"[{len(value)} integers]"
    return repr(value)


def run_seed(
    seed: int, ops: int, workdir: Path, *, slow_ops: bool = True, server: Server | None = None
) -> Stats:
    """Run ``ops`` random operations on a fresh repository for ``seed``."""
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    sc = Scenario(seed, workdir, server=server)
    try:
        sc.check()
        table = [
            (k, w)
            for k, w in Scenario.OPERATIONS
            if (slow_ops or k not in _SLOW) and (server is not None or not k.startswith("api_"))
        ]
        kinds, weights = [k for k, _ in table], [w for _, w in table]
        for _ in range(ops):
            sc.step(kinds, weights)
    finally:
        sc.close()
    sc.stats.seconds = time.monotonic() - t0
    return sc.stats


#: Operations that start real processes (slower); ``--fast`` leaves them out.
_SLOW = {"cli_start", "concurrent_starts", "set_during_start", "cancel", "kill"}


@dataclass
class Server:
    """An ``e3-api-server`` serving every repository under ``root``."""

    url: str
    root: Path
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, root: Path) -> Server:
        root.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("e3-api-server")),
                "--repos",
                str(root),
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_env(),
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if "listening on " not in line:
            proc.kill()
            raise RuntimeError(f"e3-api-server did not start: {line!r}")
        return cls(line.rsplit(" ", 1)[1], root, proc)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
