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
from e3.base.paths import format_keypath
from e3.codec import beast2
from e3.codec.formats import detect_format, format_from_name, read_value, render_value
from e3.core import executions, packages
from e3.dataflow.execute import TaskExecutor, task_env
from e3.dataflow.graph import build_graph
from e3.errors import TaskNotFound, UsageError
from e3.model.results import AdhocResult
from e3.model.runs import Isolation, StartOptions
from e3.records import structure
from e3.records import task as task_record
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
    hashes: list[str] = []
    wanted = list(tobj.inputs)
    first = wanted[0] if wanted else None
    builtin = pkg.refs.get(first) if first is not None and first[-1] == "function_ir" else None
    if builtin is not None and builtin.hash and len(inputs) == len(wanted) - 1:
        hashes.append(builtin.hash)  # an East task's function comes from the package
        wanted = wanted[1:]
    if len(inputs) != len(wanted):
        shown = wanted[1:] if builtin is not None else wanted
        names = ", ".join(format_keypath(p) for p in shown) or "none"
        raise UsageError(
            f"task '{task}' takes {len(shown)} input(s) ({names}); {len(inputs)} given"
        )
    shown_names = labels if labels is not None else [str(f) for f in inputs]
    for path, file, label in zip(wanted, inputs, shown_names, strict=True):
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
    out_type = leaves[tobj.output].type
    out_format = format_from_name(str(output)) or "beast2"
    if out_format == "csv":
        raise UsageError("e3 run writes .beast2, .east or .json output")
    ih = inputs_hash(hashes)
    if not force:
        hit = executions.cached_output(repo, task_hash, ih)
        if hit is not None:
            _write_output(repo, hit[1], out_type, output, out_format)
            return AdhocResult(task, hit[1], hit[0], True, time.monotonic() - t0)
    node = build_graph({task: (task_hash, tobj)}).tasks[0]
    options = StartOptions(isolation=isolation, timeout=timeout, concurrency=1, force=force)

    async def go() -> tuple[str | None, str | None, str | None]:
        registry = default_registry(isolation=isolation, max_workers=1)
        executor = TaskExecutor(
            repo,
            repo.tmp_dir / f"run-{new_uuid7()}",
            options,
            registry,
            lambda kind, **fields: None,
            task_env({}),
            {tobj.output: out_type},
        )
        try:
            done = await executor.execute(node, tuple(hashes))
        finally:
            executor.close()
            await registry.close()
        if done.publish is not None:
            if repo.durable:
                atomic.sync_filesystem(repo.root)
            done.publish()
        return done.output_hash, done.execution_id, done.error

    out_hash, eid, error = asyncio.run(go())
    if out_hash is not None and error is None:
        _write_output(repo, out_hash, out_type, output, out_format)
    return AdhocResult(task, out_hash, eid, False, time.monotonic() - t0, error)


def _write_output(repo: RepoStore, h: str, out_type: object, output: Path, fmt: str) -> None:
    data = repo.objects.get(h)
    if fmt != "beast2":
        data = render_value(beast2.decode(data, out_type), out_type, fmt)  # type: ignore[arg-type]
    atomic.write_bytes(output, data, durable=False)
