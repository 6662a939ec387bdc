"""The crash-state explorer: trace a workload, build crash states, check each one.

For each workload (:mod:`fuzz.powercut.workloads`): prepare a world, snapshot
it, run the steps under strace (:mod:`fuzz.powercut.strace`), turn the trace
into ops (:mod:`fuzz.powercut.recorder`) and make sure the model ends where
the disk did. Then, for each file-system model (:mod:`fuzz.powercut.crash`),
pick cuts (every sync and marker boundary first, then random ones), sample
what survives at each, replay it, and check every *distinct* state
(:mod:`fuzz.powercut.checks`) on a copy of the world, on a pool of workers.

A violation keeps its state directory, the trace and the steps under the
``keep`` directory and is reported with its workload, model and cut.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.powercut.checks import Checker, fold
from fuzz.powercut.crash import MODELS, Recording, Selection, distinct_states, materialise
from fuzz.powercut.recorder import Recorder
from fuzz.powercut.strace import TraceError, run_traced
from fuzz.powercut.workloads import WORKLOADS, Context, Plan

_TRACE_TIMEOUT = 600


def executions_with_results(rec: Recorder) -> frozenset[str]:
    """``exec:<task>/<inputs>`` for every execution whose ``output`` names a result."""
    facts = set()
    base = "repo/executions"
    for th in rec.listdir(base):
        if len(th) != 64:
            continue
        for ih in rec.listdir(f"{base}/{th}"):
            for eid in rec.listdir(f"{base}/{th}/{ih}"):
                out = rec.read(f"{base}/{th}/{ih}/{eid}/output")
                if out is not None and len(out.strip()) == 64:
                    facts.add(f"exec:{th}/{ih}")
    return frozenset(facts)


@dataclass
class Traced:
    """A workload's recording and what its checks need."""

    name: str
    ctx: Context
    plan: Plan
    recording: Recording
    trace_file: Path
    seconds: float


def trace_workload(name: str, base: Path, tasks: int, seed: int) -> Traced:
    """Prepare ``name``'s world under ``base``, run its steps traced, return the recording."""
    ctx = Context(base, tasks, random.Random(seed))
    plan = WORKLOADS[name](ctx)
    steps_file, acks, trace_file = base / "steps.json", base / "acks", base / "trace"
    steps_file.write_text(json.dumps(plan.steps, indent=1))
    acks.touch()
    rec = Recorder(ctx.world, acks, executions_with_results)
    env = {**os.environ, "TMPDIR": str(ctx.world / "systmp")}
    env.pop("E3_FSYNC", None)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parents[2]), env.get("PYTHONPATH")])
    )
    t0 = time.monotonic()
    argv = [sys.executable, "-m", "fuzz.powercut.driver", str(steps_file), str(acks)]
    proc = run_traced(argv, trace_file, env=env, cwd=base, timeout=_TRACE_TIMEOUT)
    if proc.returncode != 0:
        raise TraceError(f"workload {name} failed: {proc.stderr.decode(errors='replace')[-800:]}")
    rec.load(trace_file)
    recording = Recording(rec.root, rec.initial, rec.ops, rec.initial_promises)
    return Traced(name, ctx, plan, recording, trace_file, time.monotonic() - t0)


def record_command(argv: list[str], world: Path, acks: Path, trace_file: Path) -> Recording:
    """Run one command traced and return what it did to ``world`` (markers read from ``acks``).

    For the explorer's own tests and small regressions: no workload, no promises.
    """
    rec = Recorder(world, acks)
    proc = run_traced(argv, trace_file, env=dict(os.environ), cwd=trace_file.parent, timeout=60)
    if proc.returncode != 0:
        raise TraceError(f"{argv[0]} failed: {proc.stderr.decode(errors='replace')[-800:]}")
    rec.load(trace_file)
    return Recording(rec.root, rec.initial, rec.ops, rec.initial_promises)


def _content_matters(rel: str) -> bool:
    """Scratch files under the repository's tmp/ count by name only (e3 never reads them back)."""
    return not rel.startswith(("repo/tmp/", "systmp/"))


@dataclass
class Stats:
    """Counts for one workload."""

    workload: str
    ops: int = 0
    syncs: int = 0
    states: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    trace_seconds: float = 0.0
    seconds: float = 0.0


def explore(
    traced: Traced,
    budget: int,
    models: tuple[str, ...],
    rng: random.Random,
    pool: ThreadPoolExecutor,
    scratch: Path,
    keep: Path | None,
    in_flight: int = 4,
) -> Stats:
    """Check up to ``budget`` distinct crash states of a recording (split between models).

    At most ``in_flight`` materialised states wait for (or are in) a check at a time.
    """
    stats = Stats(traced.name, len(traced.recording.ops), trace_seconds=traced.seconds)
    stats.syncs = sum(1 for op in traced.recording.ops if op.kind == "sync")
    t0 = time.monotonic()
    pending: list[tuple[Future[list[str]], Selection, Path]] = []
    defaults = traced.ctx.spec.defaults()

    def settle(limit: int) -> None:
        while len(pending) > limit:
            future, sel, where = pending.pop(0)
            problems = future.result()
            if problems:
                kept = _keep(where, traced, sel, keep)
                stats.violations.append(
                    f"{traced.name}, {sel.label}: {'; '.join(problems[:3])} (state kept at {kept})"
                )
            shutil.rmtree(where, ignore_errors=True)

    for model in models:
        share = budget // len(models) + (1 if model == models[0] and budget % len(models) else 0)
        found = 0
        for sel, state in distinct_states(traced.recording, model, rng, share, _content_matters):
            found += 1
            where = scratch / f"state-{model}-{found}"
            materialise(state, where)
            exp = fold(traced.plan.initial, traced.recording.ops, sel.cut, defaults)
            exp.promises.update(traced.recording.initial_promises)
            checker = Checker(where, traced.ctx.spec, traced.plan.workspaces)
            pending.append((pool.submit(checker.run, exp), sel, where))
            settle(in_flight)
        stats.states[model] = found
        if found < share:
            stats.notes.append(
                f"{traced.name}: {found} distinct {model} states of {share} wanted "
                "(30 samples per state wanted found no more: a small recording)"
            )
    settle(0)
    stats.seconds = time.monotonic() - t0
    return stats


def _keep(where: Path, traced: Traced, sel: Selection, keep: Path | None) -> str:
    """Keep a violating state (and the trace and steps that made it) for a person to look at."""
    if keep is None:
        return "(not kept: no --keep directory)"
    dest = keep / f"{traced.name}-{sel.label.replace(' ', '_')}"
    if dest.exists():
        return str(dest)
    shutil.copytree(where, dest / "state", symlinks=True)
    shutil.copy(traced.trace_file, dest / "trace")
    shutil.copy(traced.trace_file.with_name("steps.json"), dest / "steps.json")
    (dest / "selection.txt").write_text(
        f"{sel.label}\nwhole: {sorted(sel.whole)}\npages: {sel.pages}\n"
    )
    return str(dest)


def run_powercut(
    workloads: list[str],
    budget: int,
    *,
    tasks: int,
    seed: int,
    models: tuple[str, ...] = MODELS,
    workers: int = 2,
    traces: int = 1,
    keep: Path | None = None,
    verbose: bool = False,
) -> list[Stats]:
    """Trace and explore each workload ``traces`` times, ``budget`` states per workload."""
    rng = random.Random(seed)
    out: list[Stats] = []
    shm = Path("/dev/shm")
    root = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    with (
        tempfile.TemporaryDirectory(prefix="e3-powercut-", dir=root) as tmp,
        ThreadPoolExecutor(workers) as pool,
    ):
        for name in workloads:
            for t in range(traces):
                base = Path(tmp) / f"{name}-{t}"
                traced, notes = _trace_with_retries(name, base, tasks, rng.randrange(1 << 30))
                scratch = base / "states"
                scratch.mkdir()
                share = budget // traces + (1 if t < budget % traces else 0)
                stats = explore(traced, share, models, rng, pool, scratch, keep, 2 * workers)
                stats.notes.extend(notes)
                if verbose:
                    print(_line(stats), flush=True)
                out.append(stats)
                shutil.rmtree(base, ignore_errors=True)
    return out


def _trace_with_retries(name: str, base: Path, tasks: int, seed: int) -> tuple[Traced, list[str]]:
    """Trace a workload; a recording the model could not follow is reported and redone.

    Such a recording says the recorder missed or misread something (a bug of the
    explorer, not of e3): it is never explored, and the note names the cause.
    """
    notes: list[str] = []
    for attempt in range(1, 4):
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir()
        try:
            return trace_workload(name, base, tasks, seed + attempt), notes
        except TraceError as exc:
            notes.append(f"{name}: recording {attempt} not usable: {exc}")
    raise TraceError("; ".join(notes))


def _line(s: Stats) -> str:
    states = ", ".join(f"{m} {n}" for m, n in s.states.items())
    return (
        f"  {s.workload:<14} {s.ops:>6} ops {s.syncs:>4} syncs  states: {states:<22} "
        f"trace {s.trace_seconds:5.1f} s, checks {s.seconds:6.1f} s, "
        f"{len(s.violations)} violations"
    )
