"""The workloads the explorer traces: a prepared world and the steps run on it.

Every workload uses one package (:func:`package_spec`): inputs ``a``, ``b``,
``c`` (Integer) and ``big`` (Array of Integer, summed by task ``sum_big``), then
East arithmetic and shell copy tasks (every fourth one is ``cp``) in a DAG,
so that :meth:`fuzz.model.PackageSpec.expected` is the oracle of every output.
A workload's setup runs untraced (fast, ``E3_FSYNC=0``): its result is the
initial state, which the crash states treat as durable. Its steps run traced,
through the CLI, with markers for what each one acknowledged
(:mod:`fuzz.powercut.driver`).

| workload | setup | traced steps |
|---|---|---|
| create | nothing | repo create, package import, workspace deploy, set |
| set | deployed | three sets (two of one input) |
| start | deployed | start of the whole dataflow |
| reactive | deployed | start, and a set while its tasks run |
| gc | two versions, one removed, inputs set ten times, run | gc --min-age 0 |
| export-import | deployed and run | workspace export, workspace import into ws2 |
| server | deployed | e3 serve; a set over 1 MiB (upload), a package import (upload), a small set |
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz.model import PackageSpec, TaskSpec

E3 = str(Path(sys.executable).with_name("e3"))
INPUTS = ("a", "b", "c")
BIG = "big"
#: Items of the value set through the server's upload flow (over 1 MiB as Beast2).
BIG_ITEMS = 260_000


def package_spec(tasks: int, version: str = "1.0.0", salt: int = 0) -> PackageSpec:
    """The workloads' package: ``tasks`` tasks, shell copies and East arithmetic."""
    rng = random.Random(1000 + tasks)
    specs = [TaskSpec("sum_big", (BIG,), "sum")]
    available = [*INPUTS, "sum_big"]
    for i in range(tasks - 1):
        name = f"t{i}"
        if i % 4 == 3:
            specs.append(TaskSpec(name, (rng.choice(available[-5:]),), "copy"))
        else:
            deps = tuple(rng.sample(available[-6:], k=min(2, len(available[-6:]))))
            specs.append(TaskSpec(name, deps, "east", mul=1 + i % 3, add=(i + salt) % 7))
        available.append(name)
    return PackageSpec(
        "pc", version, {n: i + 1 for i, n in enumerate(INPUTS)}, tuple(specs), BIG, tuple(range(10))
    )


#: Arrays by their digest, so that a digest in a marker can be turned back into its value.
_ARRAYS: dict[str, list[int]] = {}


def value_key(value: Any) -> Any:
    """What markers and checks compare: integers as they are, arrays by a digest."""
    if isinstance(value, list):
        key = "sha256:" + hashlib.sha256(json.dumps(value).encode()).hexdigest()
        _ARRAYS.setdefault(key, value)
        return key
    return value


def value_of(key: Any) -> Any:
    """The value a key stands for (the inverse of :func:`value_key`)."""
    return _ARRAYS.get(key, key) if isinstance(key, str) else key


def east_text(value: Any) -> str:
    """A value as ``.east`` text (what ``e3 set`` reads)."""
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


@dataclass
class Context:
    """Where a workload runs: ``base`` holds its inputs, ``world`` what a power cut may hit."""

    base: Path
    tasks: int
    rng: random.Random
    spec: PackageSpec = field(init=False)

    def __post_init__(self) -> None:
        self.spec = package_spec(self.tasks)
        self.world.mkdir(parents=True)
        (self.world / "systmp").mkdir()
        (self.base / "inputs").mkdir()

    @property
    def world(self) -> Path:
        return self.base / "world"

    @property
    def repo(self) -> str:
        return str(self.world / "repo")

    def e3(self, *args: str) -> str:
        """Run an untraced setup command (no fsync: the initial state counts as durable)."""
        env = {**os.environ, "E3_FSYNC": "0", "TMPDIR": str(self.world / "systmp")}
        proc = subprocess.run([E3, *args], capture_output=True, text=True, env=env, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"setup: e3 {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def zip_of(self, spec: PackageSpec) -> str:
        """Export a package spec to a zip outside the world."""
        import e3

        path = self.base / "inputs" / f"{spec.name}-{spec.version}.zip"
        if not path.exists():
            e3.export(spec.build(), path)
        return str(path)

    def value_file(self, value: Any) -> str:
        path = self.base / "inputs" / f"value-{len(os.listdir(self.base / 'inputs'))}.east"
        path.write_text(east_text(value))
        return str(path)

    def deployed(self) -> None:
        self.e3("repo", "create", self.repo)
        self.e3("package", "import", self.repo, self.zip_of(self.spec))
        self.e3("workspace", "deploy", self.repo, "ws", "pc@1.0.0")

    def set_step(self, ws: str, name: str, value: Any, repo: str | None = None) -> dict[str, Any]:
        """A traced ``set`` and its marker."""
        payload = {"kind": "set", "ws": ws, "input": name, "value": value_key(value)}
        argv = [E3, "set", repo or self.repo, f"{ws}.inputs.{name}", self.value_file(value)]
        return {"argv": argv, "begin": payload, "ack": payload}


@dataclass
class Plan:
    """A prepared world: the traced steps and what was true before them."""

    steps: list[dict[str, Any]]
    workspaces: tuple[str, ...]
    initial: dict[str, Any]  # repo / packages / inputs (ws -> name -> key) / started


def _initial(
    ctx: Context, *, started: tuple[str, ...] = (), ws: tuple[str, ...] = ("ws",)
) -> dict[str, Any]:
    defaults = {k: value_key(v) for k, v in ctx.spec.defaults().items()}
    return {
        "repo": True,
        "packages": ["pc@1.0.0"],
        "inputs": {w: dict(defaults) for w in ws},
        "started": list(started),
    }


def _create(ctx: Context) -> Plan:
    steps = [
        {"argv": [E3, "repo", "create", ctx.repo], "ack": {"kind": "repo"}},
        {
            "argv": [E3, "package", "import", ctx.repo, ctx.zip_of(ctx.spec)],
            "ack": {"kind": "package", "ref": "pc@1.0.0"},
        },
        {
            "argv": [E3, "workspace", "deploy", ctx.repo, "ws", "pc@1.0.0"],
            "begin": {"kind": "deploy", "ws": "ws"},
            "ack": {"kind": "deploy", "ws": "ws"},
        },
        ctx.set_step("ws", "a", ctx.rng.randint(0, 999)),
    ]
    return Plan(steps, ("ws",), {"repo": False, "packages": [], "inputs": {}, "started": []})


def _sets(ctx: Context) -> Plan:
    ctx.deployed()
    steps = [ctx.set_step("ws", n, ctx.rng.randint(0, 999)) for n in ("a", "b", "a")]
    return Plan(steps, ("ws",), _initial(ctx))


def _start(ctx: Context) -> Plan:
    ctx.deployed()
    run = {"kind": "start", "ws": "ws"}
    start = {"argv": [E3, "start", ctx.repo, "ws"], "begin": run, "ack": run}
    return Plan([start], ("ws",), _initial(ctx))


def _reactive(ctx: Context) -> Plan:
    ctx.deployed()
    value = ctx.rng.randint(0, 999)
    step = ctx.set_step("ws", "a", value)
    reactive = {
        "start": [E3, "start", ctx.repo, "ws", "--json", "--concurrency", "2"],
        "set": step["argv"],
        "set_payload": step["ack"],
        "begin": {"kind": "start", "ws": "ws"},
        "ack": {"kind": "start", "ws": "ws"},
    }
    return Plan([{"reactive": reactive}], ("ws",), _initial(ctx))


def _gc(ctx: Context) -> Plan:
    ctx.deployed()
    ctx.e3("start", ctx.repo, "ws")
    v2 = package_spec(ctx.tasks, "1.1.0", salt=3)
    ctx.e3("package", "import", ctx.repo, ctx.zip_of(v2))
    ctx.e3("workspace", "deploy", ctx.repo, "ws", "pc@1.1.0")
    ctx.e3("package", "remove", ctx.repo, "pc@1.0.0")
    for value in (ctx.rng.randint(0, 999), ctx.rng.randint(0, 999)):
        ctx.e3("set", ctx.repo, "ws.inputs.a", ctx.value_file(value))
    for _ in range(8):  # values of several pages each, all garbage but the last
        big = [ctx.rng.randint(0, 10**9) for _ in range(3000)]
        ctx.e3("set", ctx.repo, f"ws.inputs.{BIG}", ctx.value_file(big))
    ctx.e3("start", ctx.repo, "ws")
    initial = _initial(ctx, started=("ws",))
    initial["packages"] = ["pc@1.1.0"]
    initial["inputs"]["ws"]["a"] = value_key(value)
    initial["inputs"]["ws"][BIG] = value_key(big)
    ctx.spec = v2
    gc = {"argv": [E3, "repo", "gc", ctx.repo, "--min-age", "0"], "ack": {"kind": "gc"}}
    return Plan([gc], ("ws",), initial)


def _export_import(ctx: Context) -> Plan:
    ctx.deployed()
    ctx.e3("start", ctx.repo, "ws")
    zip_path = str(ctx.world / "ws.zip")
    steps = [
        {
            "argv": [E3, "workspace", "export", ctx.repo, "ws", zip_path, "--version", "2.0.0"],
            "ack": {"kind": "export", "file": "ws.zip"},
            "sha256_of": zip_path,
        },
        {
            "argv": [E3, "workspace", "import", ctx.repo, "ws2", zip_path],
            "begin": {"kind": "deploy", "ws": "ws2", "like": "ws"},
            "ack": {"kind": "deploy", "ws": "ws2", "like": "ws"},
        },
    ]
    return Plan(steps, ("ws", "ws2"), _initial(ctx, started=("ws",)))


def _server(ctx: Context) -> Plan:
    ctx.deployed()
    big = [ctx.rng.randint(0, 10**9) for _ in range(BIG_ITEMS)]
    url = "{url}/repos/default"
    upload = ctx.set_step("ws", BIG, big, repo=url)
    v2 = package_spec(ctx.tasks, "1.2.0", salt=5)
    steps = [
        {"serve": [E3, "serve", "--repo", ctx.repo, "--port", "0"]},
        upload,
        {
            "argv": [E3, "package", "import", url, ctx.zip_of(v2)],
            "ack": {"kind": "package", "ref": "pc@1.2.0"},
        },
        ctx.set_step("ws", "b", ctx.rng.randint(0, 999), repo=url),
    ]
    return Plan(steps, ("ws",), _initial(ctx))


WORKLOADS: dict[str, Callable[[Context], Plan]] = {
    "create": _create,
    "set": _sets,
    "start": _start,
    "reactive": _reactive,
    "gc": _gc,
    "export-import": _export_import,
    "server": _server,
}
