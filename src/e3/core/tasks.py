"""The tasks of a deployed package, and the inputs they would run on now.

Packages are immutable, so their decoded task objects are cached by package
hash in ``cache/graphs/<hash>.json``: a thousand-task package costs a thousand
object decodes once, not on every command. The cache is only a cache: a file
that is missing, unreadable or disagrees with the package is ignored.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from e3.base import atomic
from e3.base.hashing import inputs_hash
from e3.base.paths import DatasetPath
from e3.errors import E3Error
from e3.records import task as task_record
from e3.records.dataset_ref import DatasetRef
from e3.records.task import TaskObject
from e3.store.repository import RepoStore

#: Task name → (task object hash, decoded task object).
PackageTasks = dict[str, tuple[str, TaskObject]]


def package_tasks(repo: RepoStore, package_hash: str, tasks: Mapping[str, str]) -> PackageTasks:
    """Decode the task objects ``tasks`` (name → hash) of package ``package_hash``."""
    cache = repo.root / "cache" / "graphs" / f"{package_hash}.json"
    found = _read_cache(cache, tasks)
    if found is not None:
        return found
    decoded = {name: (h, task_record.decode(repo.objects.get(h))) for name, h in tasks.items()}
    payload = {
        name: [h, t.command_ir, [list(p) for p in t.inputs], list(t.output)]
        for name, (h, t) in decoded.items()
    }
    with contextlib.suppress(E3Error):
        atomic.write_bytes(cache, json.dumps(payload).encode(), durable=False)
    return decoded


def _read_cache(path: Path, expected: Mapping[str, str]) -> PackageTasks | None:
    raw = atomic.read_bytes(path)
    if not raw:
        return None
    try:
        payload = json.loads(raw)
        tasks = {
            name: (h, TaskObject(ir, tuple(tuple(p) for p in ins), tuple(out)))
            for name, (h, ir, ins, out) in payload.items()
        }
    except (ValueError, TypeError):
        return None
    if {n: h for n, (h, _) in tasks.items()} != dict(expected):
        return None
    return tasks


def current_input_hashes(
    refs: Mapping[DatasetPath, DatasetRef], inputs: Sequence[DatasetPath]
) -> list[str] | None:
    """The value hashes of a task's inputs in order, or ``None`` if one has no value."""
    hashes = []
    for p in inputs:
        ref = refs.get(p)
        if ref is None or ref.kind != "value" or not ref.hash:
            return None
        hashes.append(ref.hash)
    return hashes


def current_inputs_hash(
    refs: Mapping[DatasetPath, DatasetRef], inputs: Sequence[DatasetPath]
) -> str | None:
    """The cache key's inputs hash for a task's current inputs (``None``: one is unset)."""
    hashes = current_input_hashes(refs, inputs)
    return None if hashes is None else inputs_hash(hashes)
