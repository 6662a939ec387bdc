"""What must hold in every crash state, checked through the e3 CLI.

What was acknowledged before the cut (:class:`Expect`, folded from the
driver's markers and the promises read at each file-system sync) must be
there, and the repository must come back by itself:

* ``e3 repo verify`` finds no problem (``.partial`` files and attempts cut off
  while being created are counted, not reported: they are safe to drop);
* an acknowledged repository, package or workspace exists; each input holds
  its last acknowledged value, or the value of a ``set`` begun after it;
  an acknowledged export's zip has its bytes;
* every execution promised at a completed sync (its result was on disk when a
  batch's ``syncfs`` began) still has its result, and the next ``e3 start``
  does not run it again; after a run was acknowledged, with no ``set`` since,
  the outputs are already the oracle's before anything runs, for inputs the run
  may have used (a ``set`` made while it ran may land after its last look at its
  inputs and be left to the next ``start``: either value is accepted, never a mix);
* the next ``e3 start`` succeeds (no lock or record left stuck), and then every
  output equals the oracle's value for the inputs the state holds; if a run was
  cut short, ``e3 log`` shows no run still ``running``.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fuzz.model import PackageSpec
from fuzz.powercut.ops import Op
from fuzz.powercut.workloads import BIG, E3, value_key, value_of

_TIMEOUT = 300


@dataclass
class Expect:
    """What a crash at one cut must show."""

    repo: bool
    packages: set[str]
    inputs: dict[str, dict[str, set[Any]]]  # ws -> input -> allowed value keys
    deployed: set[str]
    maybe_deployed: set[str]
    started: set[str]
    running: set[str] = field(default_factory=set)  # a run begun and not acknowledged
    # ws -> input -> the values the last run begun there may have used: those allowed when
    # it began, and those of sets begun while it ran (one racing its end may miss it).
    run_inputs: dict[str, dict[str, set[Any]]] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    promises: set[str] = field(default_factory=set)


def fold(initial: dict[str, Any], ops: list[Op], cut: int, defaults: dict[str, Any]) -> Expect:
    """The expectations at ``cut``: the initial ones, then every marker and sync before it."""
    exp = Expect(
        repo=initial["repo"],
        packages=set(initial["packages"]),
        inputs={ws: {k: {v} for k, v in vals.items()} for ws, vals in initial["inputs"].items()},
        deployed=set(initial["inputs"]),
        maybe_deployed=set(),
        started=set(initial["started"]),
    )
    for op in ops[:cut]:
        if op.kind == "sync":
            exp.promises.update(op.promises)
        if op.payload is None:
            continue
        p, ack = op.payload, op.kind == "ack"
        kind = p["kind"]
        if kind == "set":
            if p["ws"] in exp.running:
                exp.run_inputs[p["ws"]].setdefault(p["input"], set()).add(p["value"])
            allowed = exp.inputs.setdefault(p["ws"], {}).setdefault(p["input"], set())
            if ack:
                allowed.clear()
            else:
                exp.started.discard(p["ws"])
            allowed.add(p["value"])
        elif kind == "deploy":
            like = exp.inputs.get(p["like"]) if "like" in p else None
            fresh = (
                {k: set(v) for k, v in like.items()}
                if like
                else {k: {value_key(v)} for k, v in defaults.items()}
            )
            if ack:
                exp.deployed.add(p["ws"])
                exp.inputs[p["ws"]] = fresh
            else:
                exp.maybe_deployed.add(p["ws"])
                for k, v in fresh.items():
                    exp.inputs.setdefault(p["ws"], {}).setdefault(k, set()).update(v)
        elif ack and kind == "repo":
            exp.repo = True
        elif ack and kind == "package":
            exp.packages.add(p["ref"])
        elif kind == "start":
            if ack:
                exp.started.add(p["ws"])
                exp.running.discard(p["ws"])
            else:
                exp.running.add(p["ws"])
                now = exp.inputs.get(p["ws"], {})
                exp.run_inputs[p["ws"]] = {k: set(v) for k, v in now.items()}
        elif ack and kind == "export":
            exp.exports[p["file"]] = p["sha256"]
    return exp


@cache
def _decoder(name: str) -> Any:
    from east import ArrayType, IntegerType
    from east.serialization.beast2 import decode_beast2_with_header_for

    return decode_beast2_with_header_for(ArrayType(IntegerType) if name == BIG else IntegerType)


class Checker:
    """Runs the checks on one materialised state (a copy of the world at ``root``)."""

    def __init__(self, root: Path, spec: PackageSpec, workspaces: tuple[str, ...]) -> None:
        self.root = root
        self.repo = root / "repo"
        self.spec = spec
        self.workspaces = workspaces
        self.problems: list[str] = []
        # No early East worker: the checks are about the repository, and a worker
        # started for a run with nothing left to compute doubles its CPU.
        self.env = {**os.environ, "E3_FSYNC": "0", "E3_EARLY_WORKER": "0", "TMPDIR": str(root)}

    def e3(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [E3, *args], capture_output=True, text=True, env=self.env, timeout=_TIMEOUT
        )

    def fail(self, message: str) -> None:
        self.problems.append(message)

    def value(self, name: str, h: str | None) -> Any:
        """A stored value, decoded (``None`` if absent)."""
        if not h:
            return None
        path = self.repo / "objects" / h[:2] / f"{h[2:]}.beast2"
        try:
            decoded = _decoder(name)(path.read_bytes())
            return value_key([int(x) for x in decoded] if name == BIG else int(decoded))
        except (OSError, ValueError, RuntimeError) as exc:
            self.fail(f"object {h[:12]} of {name}: unreadable ({exc})")
            return None

    def run(self, exp: Expect) -> list[str]:
        """Every check; returns the violations (empty when the state is fine).

        A check that breaks (an output it cannot parse, say) is a violation too:
        the state is kept and looked at, not skipped.
        """
        try:
            return self._run(exp)
        except Exception as exc:  # reported with the state, never lost
            return [*self.problems, f"the checks themselves failed: {type(exc).__name__}: {exc}"]

    def _run(self, exp: Expect) -> list[str]:
        if not all(
            (self.repo / d).is_dir() for d in ("objects", "packages", "executions", "workspaces")
        ):
            if exp.repo:
                self.fail("the acknowledged repository is gone")
            else:
                proc = self.e3("repo", "create", str(self.repo))
                if proc.returncode != 0:
                    self.fail(f"repo create on a half-created repository: {proc.stderr.strip()}")
            return self.problems
        proc = self.e3("repo", "verify", str(self.repo), "--json")
        if proc.returncode != 0:
            try:
                problems = json.loads(proc.stdout)["problems"]
            except (ValueError, KeyError):
                problems = [proc.stderr.strip()]
            self.fail(f"verify (exit {proc.returncode}): {'; '.join(problems[:4])}")
        self._packages(exp)
        for rel, sha in exp.exports.items():
            import hashlib

            path = self.root / rel
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                self.fail(f"acknowledged export {rel} lost or changed")
        self._promised(exp)
        for ws in self.workspaces:
            self._workspace(ws, exp)
        return self.problems

    def _packages(self, exp: Expect) -> None:
        if not exp.packages:
            return
        proc = self.e3("package", "list", str(self.repo), "--json")
        listed = {f"{p['name']}@{p['version']}" for p in json.loads(proc.stdout or "[]")}
        for ref in sorted(exp.packages - listed):
            self.fail(f"acknowledged package {ref} is missing")

    def _promised(self, exp: Expect) -> None:
        """Results on disk when a completed sync began must still be there."""
        for fact in sorted(exp.promises):
            th, ih = fact.removeprefix("exec:").split("/")
            base = self.repo / "executions" / th / ih
            found = False
            for eid in os.listdir(base) if base.is_dir() else []:
                out = base / eid / "output"
                h = out.read_text().strip() if out.is_file() else ""
                if len(h) == 64 and (self.repo / "objects" / h[:2] / f"{h[2:]}.beast2").is_file():
                    found = True
            if not found:
                self.fail(f"published execution {th[:12]}/{ih[:12]} lost its result")

    def _workspace(self, ws: str, exp: Expect) -> None:
        proc = self.e3("list", str(self.repo), ws, "-r", "-l", "--json")
        if proc.returncode != 0:
            if ws in exp.deployed:
                self.fail(f"acknowledged workspace {ws}: {proc.stderr.strip()}")
            return
        listing = {e["path"]: e.get("hash") for e in json.loads(proc.stdout)}
        values = {}
        for name, allowed in sorted(exp.inputs.get(ws, {}).items()):
            got = self.value(name, listing.get(f".inputs.{name}"))
            values[name] = got
            if got not in allowed:
                self.fail(f"{ws}.inputs.{name} holds {_short(got)}, acknowledged {_short(allowed)}")
        if self.problems:
            return
        oracle = self.spec.expected(_unkey(values))
        if ws in exp.started:
            outputs = {task: self.value(task, listing.get(f".tasks.{task}")) for task in oracle}
            if outputs not in run_oracles(self.spec, values, exp.run_inputs.get(ws, {})):
                task = next(t for t in oracle if outputs[t] != value_key(oracle[t]))
                self.fail(f"{ws}.tasks.{task} after the acknowledged run: {_short(outputs[task])}")
        self._recover(ws, exp, oracle)

    def _recover(self, ws: str, exp: Expect, oracle: dict[str, Any]) -> None:
        proc = self.e3("start", str(self.repo), ws, "--json")
        if proc.returncode != 0:
            self.fail(f"start {ws} after the crash: exit {proc.returncode}: {proc.stderr.strip()}")
            return
        outputs: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            event = json.loads(line)
            if event["event"] in ("task_completed", "task_cached"):
                outputs[event["task"]] = event["output_hash"]
            if event["event"] == "task_completed":
                where = list(self.repo.glob(f"executions/*/*/{event['execution_id']}"))
                if not where:
                    self.fail(f"{ws}: no execution directory for {event['task']}'s new result")
                    continue
                th, ih = where[0].parent.parent.name, where[0].parent.name
                if f"exec:{th}/{ih}" in exp.promises:
                    self.fail(f"{ws}: start ran {event['task']} again, published before the crash")
        for task, want in oracle.items():
            got = self.value(task, outputs.get(task))
            if got != value_key(want):
                self.fail(f"{ws}.tasks.{task} after recovery: {_short(got)}, oracle {_short(want)}")
                break
        if ws not in exp.running:
            return  # every run before the cut had ended: no record can have been left open
        log = self.e3("log", str(self.repo), ws, "--json")
        stuck = [r["run_id"] for r in json.loads(log.stdout or "[]") if r["status"] == "running"]
        if log.returncode != 0 or stuck:
            self.fail(f"{ws}: runs still 'running' after recovery: {stuck or log.stderr.strip()}")


def run_oracles(
    spec: PackageSpec, values: dict[str, Any], choices: dict[str, set[Any]]
) -> list[dict[str, Any]]:
    """The outputs (as value keys) an acknowledged run may have left: one per input combination.

    ``values``: the inputs the state holds; ``choices``: the values each input may
    have had for the run (:attr:`Expect.run_inputs`; empty for a run before the
    workload, whose outputs must match ``values``). Each combination gives every
    task's output from the same inputs: a run may miss a racing set, never mix.
    """
    names = sorted(choices)
    combos = [
        {**values, **dict(zip(names, picked, strict=True))}
        for picked in itertools.product(*(sorted(choices[n], key=repr) for n in names))
    ]
    return [{t: value_key(v) for t, v in spec.expected(_unkey(c)).items()} for c in combos]


def _unkey(values: dict[str, Any]) -> dict[str, Any]:
    """Oracle inputs: a digest stands for the array it was made from."""
    return {k: value_of(v) for k, v in values.items()}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."
