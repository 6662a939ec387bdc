"""Benchmarks, run on demand: ``python -m benchmarks [--quick] [--only NAME ...]``.

Every figure is a whole process as a user would run it (CLI start included),
on this machine, and every table reports a ratio against a baseline measured in
the same run. ``--quick`` uses tiny sizes so CI can check that the benchmarks
still run; its numbers mean little.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import (
    breakdown,
    cli_get,
    cluster,
    dataflow,
    early_worker,
    formats,
    goals,
    remote,
    runners,
    web_view,
)
from benchmarks.harness import compile_bytecode

SUITES = {
    "cli": cli_get.run,
    "runners": runners.run,
    "dataflow": dataflow.run,
    "remote": remote.run,
    "web": web_view.run,
    "goals": goals.run,
    "breakdown": breakdown.run,
    "early": early_worker.run,
    "cluster": cluster.run,
    "formats": formats.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument(
        "--only", action="append", choices=sorted(SUITES), help="run only these suites (repeatable)"
    )
    parser.add_argument("--sizes", help="dataflow sizes, e.g. 10,100,1000,10000")
    args = parser.parse_args(argv)
    compile_bytecode()
    t0 = time.perf_counter()
    for name in args.only or list(SUITES):
        print(f"\n## {name}\n", flush=True)
        SUITES[name](quick=args.quick, sizes=args.sizes)
    print(f"\n(total {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
