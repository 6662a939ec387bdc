"""Workspaces as package zips, carrying their results with them.

An export is a package whose initial values are the workspace's current data.
It also carries the record of the workspace's last complete dataflow run and
the execution records (status, output, logs) of the tasks in it that match the
workspace's current inputs, so the importing repository already knows those
results: its first ``e3 start`` finds them in the cache, and ``e3 logs`` shows
their output. (The reference recorded a dataflow counter instead of an
execution id for cached tasks, so their records were lost; a run record here
always names the execution that produced the result.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from e3.base import atomic
from e3.base.names import check_package_name, check_version, check_workspace_name
from e3.base.paths import DatasetPath
from e3.core import executions, package_check, package_zip, tasks, workspaces
from e3.errors import E3Error
from e3.model.results import ExportResult, ImportResult
from e3.records import dataflow as run_record
from e3.records import package as package_record
from e3.records._util import utc_now
from e3.records.dataset_ref import DatasetRef
from e3.records.package import PackageObject
from e3.store.objects import object_relpath
from e3.store.repository import RepoStore

if TYPE_CHECKING:  # zipfile is imported only by commands that read or write zips
    from e3.store.zipfmt import ZipLimits


def export_workspace(
    repo: RepoStore, ws: str, out: Path, *, name: str | None = None, version: str | None = None
) -> ExportResult:
    """Export a workspace's current data as a package zip.

    The package has the deployed package's tasks and structure and the
    workspace's current refs as initial values; it is stored in the
    repository too, so exporting is reproducible. Versions default to
    ``<deployed version>-<timestamp>``.
    """
    from e3.store.zipfmt import write_zip

    # Names are checked before anything is locked or written.
    if name:
        check_package_name(name)
    if version:
        check_version(version)
    check_workspace_name(ws)
    with workspaces.locked(repo, ws, "exclusive", "export"):
        dep = workspaces.open_deployed(repo, ws)
        refs = workspaces.read_all_refs(dep)
        pkg = PackageObject(
            tasks=dict(dep.package.tasks),
            structure=dep.package.structure,
            refs={
                p: DatasetRef(r.kind, r.hash, {}) for p, r in refs.items() if r.kind != "unassigned"
            },
        )
        pkg_bytes = package_record.encode(pkg)
        pkg_hash = repo.objects.put(pkg_bytes)
        pname = check_package_name(name) if name else dep.state.package_name
        if version:
            pversion = check_version(version)
        else:
            stamp = format(int(utc_now().timestamp() * 1000), "x")
            pversion = f"{dep.state.package_version}-{stamp}"
        _pkg, objs = package_check.package_closure(repo, pkg_hash)
        entries = package_zip.package_zip_entries(
            repo.objects, pname, pversion, pkg_hash, pkg, sorted(objs)
        )
        entries.update(_history_entries(repo, dep, refs))
        size = write_zip(out, entries, durable=repo.durable)
    return ExportResult(pname, pversion, pkg_hash, len(objs), size)


def import_workspace(
    repo: RepoStore,
    ws: str,
    zip_path: Path,
    *,
    force: bool = False,
    limits: ZipLimits | None = None,
) -> ImportResult:
    """Import a package zip, create ``ws`` if needed and deploy the package into it."""
    check_workspace_name(ws)
    result = package_zip.import_package(repo, zip_path, force=force, limits=limits)
    workspaces.deploy(repo, ws, f"{result.name}@{result.version}")
    return result


_FILES = (
    executions.STATUS_FILE,
    executions.OUTPUT_FILE,
    executions.STDOUT_FILE,
    executions.STDERR_FILE,
)


def _history_entries(
    repo: RepoStore, deployed: workspaces.Deployed, refs: dict[DatasetPath, DatasetRef]
) -> dict[str, bytes]:
    """Zip entries for the workspace's current run, if it has one.

    ``dataflows/…`` (the run record), ``executions/…`` (status, output, logs) and
    the ``objects/…`` those executions produced.
    """
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
    package = deployed.package
    for name, (task_hash, task) in tasks.package_tasks(
        repo, deployed.state.package_hash, package.tasks
    ).items():
        done = run.task_executions.get(name)
        if done is None:
            continue
        ih = tasks.current_inputs_hash(refs, task.inputs)
        if ih is None:
            continue
        d = repo.execution_dir(task_hash, ih, done.execution_id)
        status = executions.read_status(repo, task_hash, ih, done.execution_id)
        if status is None or status.state != "success" or not status.output_hash:
            continue  # the inputs changed since that run, or the record is gone
        for file in _FILES:
            content = atomic.read_bytes(d / file)
            if content is not None:
                entries[f"executions/{task_hash}/{ih}/{done.execution_id}/{file}"] = content
        h = status.output_hash
        if repo.objects.has(h):
            entries[object_relpath(h)] = repo.objects.get(h)
    return entries
