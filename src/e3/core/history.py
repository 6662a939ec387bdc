"""Execution history that travels with a workspace export.

A workspace export carries the record of the workspace's last complete
dataflow run and the execution records (status, output, logs) of the tasks in
it that match the workspace's current inputs, so that the importing repository
already knows those results: its first ``e3 start`` finds them in the cache,
and ``e3 logs`` shows their output. (The reference recorded a dataflow counter
instead of an execution id for cached tasks, so their records were lost; a
run record here always names the execution that produced the result.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from e3.base.hashing import inputs_hash
from e3.base.paths import DatasetPath
from e3.core import executions
from e3.errors import E3Error
from e3.records import dataflow as run_record
from e3.records.dataset_ref import DatasetRef
from e3.store import atomic
from e3.store.repository import RepoStore

if TYPE_CHECKING:
    from e3.core.workspaces import Deployed

_FILES = (
    executions.STATUS_FILE,
    executions.OUTPUT_FILE,
    executions.STDOUT_FILE,
    executions.STDERR_FILE,
)


def export_entries(
    repo: RepoStore, deployed: Deployed, refs: dict[DatasetPath, DatasetRef]
) -> dict[str, bytes]:
    """Zip entries for the workspace's current run, if it has one.

    ``dataflows/…`` (the run record), ``executions/…`` (status, output, logs) and
    the ``objects/…`` those executions produced.
    """
    from e3.dataflow.scheduler import load_graph

    run_id = deployed.state.current_run_id
    if not run_id:
        return {}
    data = atomic.read_bytes(repo.dataflow_run_path(deployed.name, run_id))
    if not data:
        return {}
    try:
        run = run_record.decode(data)
    except E3Error:
        return {}
    entries = {f"dataflows/{deployed.name}/{run_id}.beast2": data}
    for node in load_graph(repo, deployed).tasks:
        done = run.task_executions.get(node.name)
        if done is None:
            continue
        hashes = [refs[p].hash for p in node.inputs if p in refs and refs[p].kind == "value"]
        if len(hashes) != len(node.inputs):
            continue
        ih = inputs_hash([h for h in hashes if h])
        d = repo.execution_dir(node.hash, ih, done.execution_id)
        status = executions.read_status(repo, node.hash, ih, done.execution_id)
        if status is None or status.state != "success" or not status.output_hash:
            continue  # the inputs changed since that run, or the record is gone
        for name in _FILES:
            content = atomic.read_bytes(d / name)
            if content is not None:
                entries[f"executions/{node.hash}/{ih}/{done.execution_id}/{name}"] = content
        h = status.output_hash
        if repo.objects.has(h):
            entries[f"objects/{h[:2]}/{h[2:]}.beast2"] = repo.objects.get(h)
    return entries
