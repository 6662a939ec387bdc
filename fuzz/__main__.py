"""Reliability tools, run on demand: ``python -m fuzz <tool> [options]``.

* ``scenario`` — random packages and operation sequences, invariants after every step;
* ``faults`` — SIGKILL of engines, tasks, servers, Dask workers and schedulers, a full
  disk, unreadable files;
* ``interrupts`` — Ctrl-C of ``e3`` at a sweep of moments from its exec on, each ending
  judged by the rule of :mod:`fuzz.interrupts`;
* ``hostile`` — mutated inputs for every reader of user data (Beast2, JSON, .east,
  zips, paths, API bodies);
* ``powercut`` — workloads traced with strace, crash states of what a power cut
  may leave (ext4 and POSIX models), checks on each.

Every tool is seeded and prints what it did as a table; ``--quick`` is the small
budget CI runs. A failure prints the seed and steps that reproduce it and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def _scenario(args: argparse.Namespace) -> int:
    from fuzz.scenario import Server, Stats, Violation, run_seed

    total = Stats()
    seeds = range(args.seed, args.seed + args.seeds)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="e3-fuzz-") as tmp:
        server = None if args.no_api else Server.start(Path(tmp) / "served")
        try:
            for seed in seeds:
                try:
                    st = run_seed(
                        seed,
                        args.ops,
                        Path(tmp) / f"seed{seed}",
                        slow_ops=not args.fast,
                        server=server,
                    )
                except Violation as exc:
                    print(f"INVARIANT VIOLATED\n{exc}", file=sys.stderr)
                    return 1
                total.add(st)
                if args.verbose:
                    print(
                        f"seed {seed}: {st.operations} operations in {st.seconds:.1f} s", flush=True
                    )
        finally:
            if server is not None:
                server.stop()
    elapsed = time.monotonic() - t0
    print(
        f"seeds {args.seed}..{args.seed + args.seeds - 1}: {total.seeds} seeds, "
        f"{total.operations} operations, {total.tasks_checked} task outputs checked, "
        f"0 invariant violations, {elapsed:.1f} s"
    )
    for kind, n in sorted(total.by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<20} {n}")
    return 0


def _faults(args: argparse.Namespace) -> int:
    from fuzz.faults import run_faults
    from fuzz.scenario import Violation

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="e3-faults-") as tmp:
        try:
            stats = run_faults(
                args.seed,
                args.kills,
                Path(tmp),
                quick=args.quick,
                worker_kills=args.worker_kills,
                scheduler_kills=args.scheduler_kills,
                only_cluster=args.only_cluster,
            )
        except Violation as exc:
            print(f"INVARIANT VIOLATED\n{exc}", file=sys.stderr)
            return 1
    print(f"faults (seed {args.seed}): 0 invariant violations, {time.monotonic() - t0:.1f} s")
    for kind, n in stats.counts.items():
        print(f"  {kind:<32} {n}")
    for note in stats.notes:
        print(f"  note: {note}")
    for skipped in stats.skipped:
        print(f"  skipped: {skipped}")
    return 0


def _interrupts(args: argparse.Namespace) -> int:
    from fuzz.interrupts import (
        BEFORE_E3,
        DROPPED,
        FINISHED,
        INTERRUPTED,
        RuleBroken,
        hello_repository,
    )
    from fuzz.interrupts import sweep as run_sweep

    t0 = time.monotonic()
    kinds = (BEFORE_E3, INTERRUPTED, FINISHED, DROPPED)
    with tempfile.TemporaryDirectory(prefix="e3-interrupts-") as tmp:
        repo = hello_repository(Path(tmp))
        # name -> (arguments, normal exit codes, tree to watch, default last moment in ms)
        table: dict[str, tuple[list[str], set[int], Path | None, float]] = {
            "help": (["--help"], {0}, None, 100.0),
            "status": (["repo", "status", str(repo)], {0}, repo, 100.0),
            "start": (["start", str(repo), "ws"], {0}, repo, 300.0),
        }
        for command in args.commands.split(","):
            argv, normal, tree, default_until = table[command]
            until = args.until if args.until is not None else default_until
            delays = [i * args.step for i in range(int(until / args.step) + 1)] * args.reps
            try:
                probes = run_sweep(argv, delays, normal=normal, repo=tree)
            except RuleBroken as exc:
                print(f"RULE BROKEN\n{exc}", file=sys.stderr)
                return 1
            name = "e3 " + " ".join(a if a != str(repo) else "<repo>" for a in argv)
            print(
                f"{name}: {len(probes)} interrupts, SIGINT at 0-{until:g} ms every {args.step:g} ms"
            )
            print(f"  {'ms':>9}  " + "  ".join(f"{k:>11}" for k in kinds))
            bucket = 10.0
            for lo in range(int(until // bucket) + 1):
                row = [p for p in probes if lo * bucket <= p.delay_ms < (lo + 1) * bucket]
                counts = [sum(1 for p in row if p.kind == k) for k in kinds]
                label = f"{lo * bucket:g}-{(lo + 1) * bucket:g}"
                print(f"  {label:>9}  " + "  ".join(f"{c:>11}" for c in counts))
            for k in kinds:
                at = [p.delay_ms for p in probes if p.kind == k]
                span = f"{min(at):.0f}-{max(at):.0f} ms" if at else "-"
                print(f"  {k:<12} {len(at):>4}  (SIGINT sent at {span})")
    print(f"interrupts: 0 rule violations, {time.monotonic() - t0:.1f} s")
    return 0


def _hostile(args: argparse.Namespace) -> int:
    from fuzz.hostile import TARGETS, run_hostile

    if args.quick:
        budget = {
            "beast2": 20_000,
            "json": 5_000,
            "east": 5_000,
            "api": 5_000,
            "paths": 5_000,
            "zip": 300,
            "bombs": 40,
        }
    else:
        n = args.inputs
        budget = {
            "beast2": n,
            "json": n // 5,
            "east": n // 5,
            "api": n // 5,
            "paths": n // 5,
            "zip": max(1, n // 200),
            "bombs": max(1, n // 5_000),
        }
    if args.only:
        budget = {k: v for k, v in budget.items() if k in args.only}
    t0 = time.monotonic()
    stats = run_hostile(args.seed, budget, workers=args.workers)
    print(f"hostile inputs (seed {args.seed}), {time.monotonic() - t0:.1f} s:")
    for name in TARGETS:
        if name in stats.inputs:
            found = sum(1 for f in stats.findings if f.target == name)
            print(
                f"  {name:<8} {stats.inputs[name]:>10,} inputs  {stats.seconds[name]:7.1f} s  "
                f"{found} findings"
            )
            for key, value in sorted(stats.details.get(name, {}).items()):
                shown = f"{value:.1f}" if key.startswith("max_") else f"{value:,.0f}"
                print(f"    {key:<40} {shown:>10}")
    for f in stats.findings[:20]:
        print(
            f"FINDING {f.target} seed {f.seed} case {f.case}: {f.kind}: {f.detail[:500]}"
            f"{f' input={f.data[:200]!r}' if f.data else ''}",
            file=sys.stderr,
        )
    return 1 if stats.findings else 0


#: CI's budget: two short workloads on a small package, a few states of each model.
_POWERCUT_QUICK = {"workloads": ["set", "start"], "states": 6, "tasks": 8}


def _powercut(args: argparse.Namespace) -> int:
    from fuzz.powercut.explore import run_powercut
    from fuzz.powercut.workloads import WORKLOADS

    names = args.workload or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}", file=sys.stderr)
        return 2
    if args.quick:
        names, args.states, args.tasks = (
            _POWERCUT_QUICK["workloads"],
            _POWERCUT_QUICK["states"],
            _POWERCUT_QUICK["tasks"],
        )
    t0 = time.monotonic()
    stats = run_powercut(
        names,
        args.states,
        tasks=args.tasks,
        seed=args.seed,
        models=tuple(args.model or ["ext4", "posix"]),
        workers=args.workers,
        traces=args.traces,
        keep=args.keep,
        verbose=args.verbose,
    )
    violations = [v for s in stats for v in s.violations]
    total = sum(sum(s.states.values()) for s in stats)
    print(
        f"powercut (seed {args.seed}): {total} crash states checked, "
        f"{len(violations)} violations, {time.monotonic() - t0:.1f} s"
    )
    by_workload: dict[str, dict[str, int]] = {}
    for s in stats:
        row = by_workload.setdefault(s.workload, {"ops": 0, "syncs": 0, "ext4": 0, "posix": 0})
        row["ops"] += s.ops
        row["syncs"] += s.syncs
        for model, n in s.states.items():
            row[model] = row.get(model, 0) + n
    for name, row in by_workload.items():
        print(
            f"  {name:<14} {row['ext4'] + row['posix']:>6} states "
            f"(ext4 {row['ext4']}, posix {row['posix']}) "
            f"from {row['ops']} ops, {row['syncs']} syncs"
        )
    for s in stats:
        for note in s.notes:
            print(f"  note: {note}")
    for v in violations[:30]:
        print(f"VIOLATION {v}", file=sys.stderr)
    return 1 if violations else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fuzz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="tool", required=True)
    s = sub.add_parser("scenario", help="random operation sequences with invariant checks")
    s.add_argument("--seed", type=int, default=1, help="first seed")
    s.add_argument("--seeds", type=int, default=20, help="number of seeds")
    s.add_argument("--ops", type=int, default=100, help="operations per seed")
    s.add_argument("--fast", action="store_true", help="no operations that start processes")
    s.add_argument("--no-api", action="store_true", help="no operations through an API server")
    s.add_argument("--quick", action="store_true", help="CI budget (3 seeds x 15 operations)")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(run=_scenario)
    f = sub.add_parser("faults", help="kills, a full disk and unreadable files")
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--kills", type=int, default=200, help="SIGKILLs of a running e3 start")
    f.add_argument("--quick", action="store_true", help="CI budget (10 kills, few of the rest)")
    f.add_argument(
        "--worker-kills", type=int, default=20, help="SIGKILLs of a Dask worker during a run"
    )
    f.add_argument(
        "--scheduler-kills", type=int, default=5, help="SIGKILLs of the Dask scheduler during a run"
    )
    f.add_argument(
        "--only-cluster", action="store_true", help="only the Dask worker and scheduler kills"
    )
    f.set_defaults(run=_faults)
    i = sub.add_parser("interrupts", help="Ctrl-C of e3 at a sweep of moments, judged")
    i.add_argument("--step", type=float, default=2.0, help="ms between interrupt moments")
    i.add_argument(
        "--commands",
        default="help,status,start",
        help="which of help (e3 --help), status (e3 repo status <repo>), start (e3 start <repo> "
        "ws), comma-separated",
    )
    i.add_argument(
        "--until",
        type=float,
        help="last moment, ms after exec (default 100; 300 for start, to reach its run)",
    )
    i.add_argument("--reps", type=int, default=1, help="sweeps of each command")
    i.add_argument(
        "--quick", action="store_true", help="CI budget (help and status, 0-100 ms, 1.5 ms steps)"
    )
    i.set_defaults(run=_interrupts)
    h = sub.add_parser("hostile", help="mutated inputs for every reader of user data")
    h.add_argument("--seed", type=int, default=1)
    h.add_argument(
        "--inputs",
        type=int,
        default=1_000_000,
        help="inputs for the Beast2 reader (the others get a fifth, zips 1/200, bombs 1/5000)",
    )
    h.add_argument("--workers", type=int, default=2)
    h.add_argument("--only", action="append", help="only this target (repeatable)")
    h.add_argument("--quick", action="store_true", help="CI budget")
    h.set_defaults(run=_hostile)
    p = sub.add_parser("powercut", help="crash states a power cut may leave, checked")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workload", action="append", help="only this workload (repeatable)")
    p.add_argument("--states", type=int, default=200, help="distinct crash states per workload")
    p.add_argument("--traces", type=int, default=1, help="traced runs per workload")
    p.add_argument("--tasks", type=int, default=50, help="tasks in the dataflow")
    p.add_argument("--model", action="append", choices=["ext4", "posix"], help="(repeatable)")
    p.add_argument("--workers", type=int, default=2, help="states checked at once")
    p.add_argument("--keep", type=Path, help="copy violating states here")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--quick", action="store_true", help="CI budget")
    p.set_defaults(run=_powercut)
    args = parser.parse_args(argv)
    if getattr(args, "quick", False) and args.tool == "scenario":
        args.seeds, args.ops = 3, 15
    if getattr(args, "quick", False) and args.tool == "interrupts":
        args.step, args.commands, args.until, args.reps = 1.5, "help,status", 100.0, 1
    if getattr(args, "quick", False) and args.tool == "faults":
        args.kills = 10
        # The cluster faults need a Dask cluster each (tests/cluster covers them in CI).
        args.worker_kills, args.scheduler_kills = 0, 0
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
