"""``e3 run``: one task of a package, on input files, outside any workspace.

The inputs are checked against the task's declared input types and stored as
objects, and the execution goes through the same cache and runners as
``e3 start``: running the same task on the same inputs twice runs it once.
For an ``e3.task`` the function IR input comes from the package, so only the
function's arguments are given.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from e3.base import atomic
from e3.base.hashing import inputs_hash
from e3.base.names import new_uuid7
from e3.base.paths import DatasetPath, format_keypath
from e3.codec import beast2
from e3.codec.formats import detect_format, format_from_name, read_value, render_value
from e3.core import executions, packages
from e3.dataflow.execute import TaskExecutor, TaskOutcome, task_env
from e3.dataflow.graph import TaskNode, build_graph
from e3.errors import TaskNotFound, UsageError
from e3.model.results import AdhocResult
from e3.model.runs import Isolation, StartOptions
from e3.records import structure
from e3.records import task as task_record
from e3.records.package import PackageObject
from e3.records.structure import DatasetSpec
from e3.runners.registry import default_registry
from e3.store.repository import RepoStore


def run_task(
    repo: RepoStore,
    spec: str,
    task: str,
    inputs: list[Path],
    output: Path,
    *,
    force: bool = False,
    isolation: Isolation = "process",
    timeout: float | None = None,
    on_input: Callable[[str, str], None] | None = None,
    labels: list[str] | None = None,
) -> AdhocResult:
    """Run ``task`` of package ``spec`` on ``inputs``; write its output to ``output``.

    ``labels`` name the inputs in messages and decide their format by extension
    (a server passes the client's file names for its spooled uploads).
    """
    t0 = time.monotonic()
    info = packages.resolve(repo, spec)
    pkg = packages.read_package_object(repo, info.hash)
    if task not in pkg.tasks:
        raise TaskNotFound(
            f"package {info.ref} has no task '{task}' "
            f"(tasks: {', '.join(sorted(pkg.tasks)) or 'none'})",
            task=task,
        )
    task_hash = pkg.tasks[task]
    tobj = task_record.decode(repo.objects.get(task_hash))
    leaves = dict(structure.leaves(pkg.structure))
    out_type = leaves[tobj.output].type
    out_format = format_from_name(str(output)) or "beast2"
    if out_format == "csv":
        raise UsageError("e3 run writes .beast2, .east or .json output")
    shown = labels if labels is not None else [str(f) for f in inputs]
    hashes = _store_inputs(repo, pkg, tobj, leaves, task, inputs, shown, on_input)
    ih = inputs_hash(hashes)
    if not force:
        hit = executions.cached_output(repo, task_hash, ih)
        if hit is not None:
            _write_output(repo, hit[1], out_type, output, out_format)
            return AdhocResult(task, hit[1], hit[0], True, time.monotonic() - t0)
    node = build_graph({task: (task_hash, tobj)}).tasks[0]
    options = StartOptions(isolation=isolation, timeout=timeout, concurrency=1, force=force)
    done = asyncio.run(_execute(repo, node, tuple(hashes), options, {tobj.output: out_type}))
    if done.output_hash is not None and done.error is None:
        _write_output(repo, done.output_hash, out_type, output, out_format)
    return AdhocResult(
        task, done.output_hash, done.execution_id, False, time.monotonic() - t0, done.error
    )


def _store_inputs(
    repo: RepoStore,
    pkg: PackageObject,
    tobj: task_record.TaskObject,
    leaves: dict[DatasetPath, DatasetSpec],
    task: str,
    inputs: list[Path],
    labels: list[str],
    on_input: Callable[[str, str], None] | None,
) -> list[str]:
    """Check each input file against its declared type and store it; the ordered hashes.

    An East task's function IR, its first input, comes from the package.
    """
    hashes: list[str] = []
    wanted = list(tobj.inputs)
    first = wanted[0] if wanted else None
    builtin = pkg.refs.get(first) if first is not None and first[-1] == "function_ir" else None
    if builtin is not None and builtin.hash and len(inputs) == len(wanted) - 1:
        hashes.append(builtin.hash)
        wanted = wanted[1:]
    if len(inputs) != len(wanted):
        shown = wanted[1:] if builtin is not None else wanted
        names = ", ".join(format_keypath(p) for p in shown) or "none"
        raise UsageError(
            f"task '{task}' takes {len(shown)} input(s) ({names}); {len(inputs)} given"
        )
    for path, file, label in zip(wanted, inputs, labels, strict=True):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {label}: {exc.strerror}") from exc
        declared = leaves[path].type
        _, value = read_value(data, detect_format(data, name=label), declared, where=label)
        h = repo.objects.put(beast2.encode(value, declared))
        hashes.append(h)
        if on_input is not None:
            on_input(label, h)
    return hashes


async def _execute(
    repo: RepoStore,
    node: TaskNode,
    hashes: tuple[str, ...],
    options: StartOptions,
    output_types: dict[DatasetPath, object],
) -> TaskOutcome:
    """Execute one task as a run would, and publish its result at once."""
    registry = default_registry(isolation=options.isolation, max_workers=1)
    executor = TaskExecutor(
        repo,
        repo.tmp_dir / f"run-{new_uuid7()}",
        options,
        registry,
        lambda kind, **fields: None,
        task_env({}),
        output_types,
    )
    try:
        done = await executor.execute(node, hashes)
    finally:
        executor.close()
        await registry.close()
    if done.publish is not None:
        if repo.durable:
            atomic.sync_filesystem(repo.root)
        done.publish()
    return done


def _write_output(repo: RepoStore, h: str, out_type: object, output: Path, fmt: str) -> None:
    data = repo.objects.get(h)
    if fmt != "beast2":
        data = render_value(beast2.decode(data, out_type, native=True), out_type, fmt)
    atomic.write_bytes(output, data, durable=False)
