"""The warm East worker's direct path gives what east-py's ``run`` command gives.

For the plain argv e3 generates, the warm worker calls the function itself and
answers with e3's canonical bytes (small outputs in its reply, large ones in
the output file), and the engine trusts a canonical header it has checked once
(:mod:`e3.dataflow.canonical`). Each test runs the same package with the warm
runner and with one process per task (east-py's own command) and compares
stored hashes, statuses and logs byte for byte.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from east import (
    ArrayType,
    DateTimeType,
    East,
    FloatType,
    IntegerType,
    OptionType,
    SetType,
    StringType,
    variant,
)

import e3
from e3.codec import beast2
from e3.core import executions, package_zip, workspaces
from e3.dataflow.canonical import TrustedHeaders
from e3.dataflow.scheduler import run_sync
from e3.model.runs import StartOptions
from e3.sdk import Package
from e3.store.repository import create_repository
from tests_support import export_to, failing_package

#: More than the engine takes inline (``execute.INLINE_OUTPUT``): written as a file.
BIG = 400_000


def _outputs_package() -> Package:
    """Outputs of several shapes: specials among floats, a set, an option, a large array."""
    floats = e3.input(
        "floats", ArrayType(FloatType), default=[1.5, math.nan, -0.0, math.inf, -math.inf]
    )
    names = e3.input("names", SetType(StringType), default={"b", "a", "c"})
    big = e3.input("big", ArrayType(IntegerType), default=list(range(BIG)))
    maybe = e3.input("maybe", OptionType(IntegerType), default=variant("some", 3))
    # An instant east-py 1.0.97 writes one millisecond early (e3.codec._datetimes):
    # the warm worker must store what east-py's command stores.
    when = e3.input("when", DateTimeType, default=datetime(2038, 7, 9, 4, 52, 37, 55000, UTC))
    tasks = [
        e3.task(
            "scaled",
            [floats],
            East.function(
                [ArrayType(FloatType)],
                ArrayType(FloatType),
                lambda b, v: v.map(lambda b2, x: x * 2.0),
            ),
        ),
        e3.task(
            "names",
            [names],
            East.function([SetType(StringType)], SetType(StringType), lambda b, v: v),
        ),
        e3.task(
            "big",
            [big],
            East.function(
                [ArrayType(IntegerType)],
                ArrayType(IntegerType),
                lambda b, v: v.map(lambda b2, x: x + 1),
            ),
        ),
        e3.task(
            "maybe",
            [maybe],
            East.function([OptionType(IntegerType)], OptionType(IntegerType), lambda b, v: v),
        ),
    ]
    tasks.append(
        e3.task("when", [when], East.function([DateTimeType], DateTimeType, lambda b, v: v))
    )
    # Many tasks with one output type: the engine's trusted-header path after the first.
    tasks += [
        e3.task(
            f"count{k}",
            [big],
            East.function([ArrayType(IntegerType)], IntegerType, lambda b, v, k=k: v.size() + k),
        )
        for k in range(6)
    ]
    return e3.package("outputs", "1.0.0", *tasks)


def _run_both(tmp_path: Path, pkg: Package) -> dict[str, object]:
    """Run ``pkg`` with each isolation; hashes, statuses and logs per task."""
    zip_path = export_to(pkg, tmp_path)
    results: dict[str, object] = {}
    for isolation in ("warm", "process"):
        repo, _ = create_repository(tmp_path / isolation)
        res = package_zip.import_package(repo, zip_path)
        workspaces.deploy(repo, "ws", f"{res.name}@{res.version}")
        # keep_going: every task that can run does, so which ones ran does not hang on
        # whether an independent task started before another failed.
        out = run_sync(repo, "ws", StartOptions(isolation=isolation, keep_going=True))
        dep = workspaces.open_deployed(repo, "ws")
        seen = {}
        for name, h in dep.package.tasks.items():
            for ex in executions.all_for_task(repo, h):
                d = ex.dir(repo)
                status = ex.status
                seen[name] = (
                    status.state if status else None,
                    status.output_hash if status else None,
                    status.exit_code if status else None,
                    *(
                        (d / f).read_bytes() if (d / f).exists() else b""
                        for f in (executions.STDOUT_FILE, executions.STDERR_FILE)
                    ),
                )
        refs = {p: r.hash for p, r in workspaces.read_all_refs(dep).items()}
        results[isolation] = (out.status, sorted(out.failed), refs, seen)
    return results


def test_outputs_of_every_shape_are_stored_alike(tmp_path: Path) -> None:
    results = _run_both(tmp_path, _outputs_package())
    assert results["warm"] == results["process"]
    status, failed, refs, _ = results["warm"]  # type: ignore[misc]
    assert status == "completed" and not failed
    assert len(refs) >= 16  # five inputs, eleven outputs


def test_failures_report_the_same_messages_and_codes(tmp_path: Path) -> None:
    results = _run_both(tmp_path, failing_package())
    assert results["warm"] == results["process"]
    _, failed, _, seen = results["warm"]  # type: ignore[misc]
    assert failed
    state, _, code, _, err = seen["bad"]
    assert (state, code) == ("failed", 1) and b"boom" in err
    assert seen["later"][0] == "success"  # independent of the failure, so run by both


def test_a_header_is_trusted_only_after_it_was_checked_for_that_dataset_type() -> None:
    headers = TrustedHeaders()
    path_a = ("tasks", "a", "output")
    path_b = ("tasks", "b", "output")
    one = beast2.encode(1, IntegerType)
    two = beast2.encode(2, IntegerType)
    text = beast2.encode("x", StringType)
    assert headers.check(path_a, IntegerType, two) is None  # nothing confirmed yet
    headers.confirm(path_a, IntegerType, one)
    assert headers.check(path_a, IntegerType, two) == two
    assert headers.check(path_b, IntegerType, two) == two  # same declared type
    assert headers.check(path_b, StringType, text) is None  # another type
    assert headers.check(path_a, IntegerType, b"not beast2") is None
    assert headers.check(path_a, IntegerType, text) is None  # another header
