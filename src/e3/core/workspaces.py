"""Workspaces: create, deploy a package, list, remove (zips: :mod:`e3.core.workspace_zip`).

A workspace deploys one package (pinned by hash) and holds one ref file per
leaf dataset. Deploy builds the new ``data/`` directory beside the old one,
syncs it, adds a ``.deploy-state`` marker holding the new workspace state
(durably: a marker vouches for every ref beside it), swaps the directory in
with one atomic rename (``renameat2(RENAME_EXCHANGE)`` where available), then
writes the state file and drops the marker and the old directory. The swap is
the commit point: a reader that finds the marker uses the state in it, so a
crash at any moment leaves the workspace either fully on the old package or
fully on the new one.

Locks (``workspaces/<ws>.lock``): deploy, remove and export take it
exclusively; dataset writes and dataflows share it; reads share it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from e3.base import atomic, settled
from e3.base.names import check_workspace_name, new_uuid7
from e3.base.paths import DatasetPath, format_workspace_path, path_from_ref_relpath, ref_relpath
from e3.core import packages
from e3.errors import (
    DecodeError,
    E3Error,
    LockConflict,
    StorageError,
    WorkspaceExists,
    WorkspaceNotDeployed,
    WorkspaceNotFound,
)
from e3.model.listings import PackageInfo, WorkspaceInfo
from e3.records import dataset_ref, structure
from e3.records import workspace as ws_record
from e3.records._util import utc_now
from e3.records.dataset_ref import DatasetRef
from e3.records.package import PackageObject
from e3.records.workspace import WorkspaceState
from e3.store import locks
from e3.store.locks import HeldLock, LockMode
from e3.store.repository import RepoStore

DEPLOY_MARKER = ".deploy-state"
_NEW_DATA = ".data-new"
_OLD_DATA = ".data-old"


@dataclass(frozen=True)
class Deployed:
    """A deployed workspace's state and package, as read under a lock."""

    name: str
    state: WorkspaceState
    package: PackageObject
    data_dir: Path


# ── locking ─────────────────────────────────────────────────────────────────


def lock_workspace(repo: RepoStore, ws: str, mode: LockMode, operation: str) -> HeldLock:
    """Take the workspace's structure lock (fails at once on conflict).

    Only deploy and create may lock a workspace that does not exist yet; for
    anything else an unknown name is reported before a lock file is created.
    """
    check_workspace_name(ws)
    if operation != "deployment" and not exists(repo, ws):
        raise WorkspaceNotFound(f"workspace '{ws}' not found", workspace=ws)
    try:
        return locks.acquire(
            repo.workspace_lock_path(ws),
            mode,
            operation=operation,  # type: ignore[arg-type]
            label=f"workspace '{ws}'",
        )
    except LockConflict:
        # A running dataflow holds the workspace lock shared (and records nothing there);
        # its own lock says what it is and since when.
        who = locks.holders_of([repo.dataflow_lock_path(ws), repo.workspace_lock_path(ws)])
        seen: set[int] = set()
        parts = []
        for h in who:
            if h.pid not in seen:
                seen.add(h.pid)
                parts.append(h.describe())
        detail = "; ".join(parts) or "another process"
        raise LockConflict(f"workspace '{ws}' is locked by {detail}", holder=detail) from None


@contextlib.contextmanager
def locked(repo: RepoStore, ws: str, mode: LockMode, operation: str) -> Iterator[None]:
    """Hold the workspace lock for the duration of a ``with`` block."""
    held = lock_workspace(repo, ws, mode, operation)
    try:
        yield
    finally:
        held.release()


# ── reading ─────────────────────────────────────────────────────────────────


def exists(repo: RepoStore, ws: str) -> bool:
    """Whether the workspace exists (deployed or not)."""
    return repo.workspace_state_path(ws).is_file()


def _current_data_dir(repo: RepoStore, ws: str) -> Path:
    wdir = repo.workspace_dir(ws)
    data = wdir / "data"
    if data.is_dir():
        return data
    new = wdir / _NEW_DATA
    if (new / DEPLOY_MARKER).is_file():  # crash between the two renames of a fallback swap
        return new
    return data


def trusted_data_dirs(repo: RepoStore, ws: str) -> list[Path]:
    """The data directories whose ref files must be whole: ``data/``, and a marked ``.data-new/``.

    A ``.data-new/`` without its deploy marker is a deployment still writing (or
    cut short: the next deployment removes it); its refs are created in place, so
    one may be partial, and nothing reads them. With the marker, every ref in it
    was synced first, and it stands in for a missing ``data/``.
    """
    wdir = repo.workspace_dir(ws)
    new = wdir / _NEW_DATA
    marked = (new / DEPLOY_MARKER).is_file()
    return [wdir / "data", new] if marked else [wdir / "data"]


def read_state(repo: RepoStore, ws: str) -> WorkspaceState | None:
    """The workspace's state (``None`` if not deployed).

    Raises:
        WorkspaceNotFound: no such workspace.
    """
    check_workspace_name(ws)
    marker = atomic.read_bytes(_current_data_dir(repo, ws) / DEPLOY_MARKER)
    raw = atomic.read_bytes(repo.workspace_state_path(ws))
    if raw is None:
        raise WorkspaceNotFound(f"workspace '{ws}' not found", workspace=ws)
    data = marker if marker else raw
    if not data:
        return None
    return ws_record.decode(data)


def open_deployed(repo: RepoStore, ws: str) -> Deployed:
    """State and package of a deployed workspace.

    Raises:
        WorkspaceNotFound: no such workspace.
        WorkspaceNotDeployed: nothing deployed yet.
    """
    state = read_state(repo, ws)
    if state is None:
        raise WorkspaceNotDeployed(
            f"workspace '{ws}' has no package deployed (run `e3 workspace deploy`)", workspace=ws
        )
    pkg = packages.read_package_object(repo, state.package_hash)
    return Deployed(ws, state, pkg, _current_data_dir(repo, ws))


def ref_file(deployed: Deployed, path: DatasetPath) -> str:
    """The file of a leaf dataset's ref (a string: runs build it for every task)."""
    return f"{deployed.data_dir}{os.sep}{ref_relpath(path)}"


def read_ref(deployed: Deployed, path: DatasetPath) -> DatasetRef:
    """A leaf dataset's ref.

    A missing or empty file reads as unassigned: task outputs are published
    without an fsync each (the run syncs once at its end), so a power cut can
    leave an empty ref, and the task simply runs again.
    """
    data = atomic.read_bytes(ref_file(deployed, path))
    if not data:
        return DatasetRef.unassigned()
    try:
        return dataset_ref.decode(data)
    except DecodeError as exc:
        where = format_workspace_path(deployed.name, path)
        raise DecodeError(f"the ref of {where} is damaged ({exc.message})") from exc


def write_ref(
    repo: RepoStore,
    deployed: Deployed,
    path: DatasetPath,
    ref: DatasetRef,
    *,
    durable: bool = True,
) -> None:
    """Atomically replace a leaf dataset's ref (fsynced unless ``durable=False``)."""
    atomic.write_bytes(
        deployed.data_dir / ref_relpath(path),
        dataset_ref.encode(ref),
        durable=repo.durable and durable,
    )


INPUTS_MARKER = settled.INPUTS_MARKER


def write_input_ref(
    repo: RepoStore, deployed: Deployed, path: DatasetPath, ref: DatasetRef
) -> None:
    """Replace a user-set dataset's ref and tell a running dataflow about it.

    A dataflow in progress watches ``workspaces/<ws>/inputs-changed`` (a new
    file each time) instead of re-reading every input after each task.
    """
    write_ref(repo, deployed, path, ref)
    atomic.write_bytes(
        repo.workspace_dir(deployed.name) / INPUTS_MARKER, os.urandom(8), durable=False
    )


def inputs_marker(repo: RepoStore, ws: str) -> tuple[int, int] | None:
    """Identity of the inputs-changed marker (changes whenever an input is set)."""
    try:
        st = os.stat(f"{repo.workspaces_dir}{os.sep}{ws}{os.sep}{INPUTS_MARKER}")
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def read_all_refs(
    deployed: Deployed, *, produced: Container[DatasetPath] | None = None
) -> dict[DatasetPath, DatasetRef]:
    """Every leaf dataset's current ref, read from its file.

    Given ``produced`` (every task output), a dataset nobody may set and no task
    writes (a task's function IR) is taken from the package instead: deployment
    is its only writer, and on 10,000 tasks those files are half of all there
    are (``prepare.read_roots`` relies on the same rule).
    """
    if produced is None:
        return {p: read_ref(deployed, p) for p, _ in structure.leaves(deployed.package.structure)}
    return {
        path: current_ref(deployed, path, spec, produced)
        for path, spec in structure.leaves(deployed.package.structure)
    }


def read_refs(
    deployed: Deployed, paths: Iterable[DatasetPath], *, produced: Container[DatasetPath]
) -> dict[DatasetPath, DatasetRef]:
    """The current refs of ``paths`` (leaf datasets), as :func:`read_all_refs` reads them."""
    tree = deployed.package.structure
    return {
        path: current_ref(deployed, path, structure.find(tree, path), produced) for path in paths
    }


def current_ref(
    deployed: Deployed,
    path: DatasetPath,
    spec: structure.Node | None,
    produced: Container[DatasetPath],
) -> DatasetRef:
    """A dataset's ref now: from the package if no one may set it and no task writes it.

    Deployment is the only writer of such a dataset (a task's function IR), and
    it wrote the package's ref; every other dataset's ref is read from its file.
    """
    if isinstance(spec, structure.DatasetSpec) and not spec.writable and path not in produced:
        return deployed.package.refs.get(path) or DatasetRef.unassigned()
    return read_ref(deployed, path)


def workspace_info(ws: str, state: WorkspaceState | None) -> WorkspaceInfo:
    """The API view of a workspace."""
    if state is None:
        return WorkspaceInfo(ws, False)
    return WorkspaceInfo(
        ws,
        True,
        state.package_name,
        state.package_version,
        state.package_hash,
        state.deployed_at,
        state.current_run_id,
    )


def list_workspaces(repo: RepoStore) -> list[WorkspaceInfo]:
    """Every workspace, sorted by name."""
    out: list[WorkspaceInfo] = []
    try:
        names = sorted(os.listdir(repo.workspaces_dir))
    except FileNotFoundError:
        return out
    for fname in names:
        if not fname.endswith(".beast2") or fname.startswith("."):
            continue
        ws = fname[: -len(".beast2")]
        try:
            check_workspace_name(ws)
            out.append(workspace_info(ws, read_state(repo, ws)))
        except E3Error:
            continue
    return out


def deployed_workspaces(repo: RepoStore) -> Iterator[Deployed]:
    """Every deployed workspace that can be read (a damaged one is skipped, not fatal).

    For repository-wide passes (retention, repair) that must go on past one bad workspace.
    """
    for ws in list_workspaces(repo):
        if not ws.deployed:
            continue
        try:
            yield open_deployed(repo, ws.name)
        except E3Error:
            continue


# ── writing ─────────────────────────────────────────────────────────────────


def create_workspace(repo: RepoStore, ws: str) -> None:
    """Create an empty (undeployed) workspace.

    Raises:
        WorkspaceExists: the name is taken.
    """
    check_workspace_name(ws)
    if exists(repo, ws):  # refused before the lock, which would record a holder
        raise WorkspaceExists(f"workspace '{ws}' already exists", workspace=ws)
    with locked(repo, ws, "exclusive", "deployment"):
        if exists(repo, ws):
            raise WorkspaceExists(f"workspace '{ws}' already exists", workspace=ws)
        # Leftovers of a workspace removed by a crashed `workspace remove`.
        shutil.rmtree(repo.workspace_dir(ws), ignore_errors=True)
        if not atomic.create_exclusive(repo.workspace_state_path(ws), b"", durable=repo.durable):
            raise WorkspaceExists(f"workspace '{ws}' already exists", workspace=ws)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2); False if unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise StorageError(f"cannot swap {a} and {b}: {os.strerror(err)}")


def _finish_deploy(repo: RepoStore, ws: str) -> None:
    """Complete (or clean up after) a deploy that was interrupted or is being committed."""
    wdir = repo.workspace_dir(ws)
    data, new, old = wdir / "data", wdir / _NEW_DATA, wdir / _OLD_DATA
    if not data.is_dir() and (new / DEPLOY_MARKER).is_file():
        os.rename(new, data)
    marker = data / DEPLOY_MARKER
    state = atomic.read_bytes(marker)
    if state:
        atomic.write_bytes(repo.workspace_state_path(ws), state, durable=repo.durable)
        atomic.remove_file(marker, durable=repo.durable)
    for leftover in (new, old):
        if leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)


def _write_data_dir(
    repo: RepoStore,
    target: Path,
    pkg: PackageObject,
    refs: dict[DatasetPath, DatasetRef] | None = None,
) -> None:
    """Write every dataset's ref into ``target``, a directory nobody reads until it is swapped in.

    So each file is created in place, not staged and renamed (a crash leaves a
    partial ``target`` that the next deployment removes), and all of them are
    synced at once before the swap that commits them.
    """
    made: set[str] = set()
    unassigned = dataset_ref.encode(DatasetRef.unassigned())
    for path, _spec in structure.leaves(pkg.structure):
        ref = (refs or pkg.refs).get(path) or pkg.refs.get(path)
        dest = target / ref_relpath(path)
        parent = str(dest.parent)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        atomic.create_file(dest, unassigned if ref is None else dataset_ref.encode(ref))


def deploy(repo: RepoStore, ws: str, spec: str) -> PackageInfo:
    """Deploy ``spec`` (``name`` or ``name@version``) into ``ws``, creating it if needed.

    Every dataset is reset to the package's initial value; task outputs come
    back from the execution cache on the next ``start``.
    """
    check_workspace_name(ws)
    info = packages.resolve(repo, spec)
    pkg = packages.read_package_object(repo, info.hash)
    with locked(repo, ws, "exclusive", "deployment"):
        if not exists(repo, ws):
            shutil.rmtree(repo.workspace_dir(ws), ignore_errors=True)
            atomic.create_exclusive(repo.workspace_state_path(ws), b"", durable=repo.durable)
        _finish_deploy(repo, ws)
        state = WorkspaceState(info.name, info.version, info.hash, utc_now(), None)
        _swap_in(repo, ws, pkg, ws_record.encode(state), None)
    return info


def _swap_in(
    repo: RepoStore,
    ws: str,
    pkg: PackageObject,
    state_bytes: bytes,
    refs: dict[DatasetPath, DatasetRef] | None,
) -> None:
    wdir = repo.workspace_dir(ws)
    data, new, old = wdir / "data", wdir / _NEW_DATA, wdir / _OLD_DATA
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    _write_data_dir(repo, new, pkg, refs)
    if repo.durable:
        atomic.sync_filesystem(repo.root)
    # The marker makes `.data-new` count as the workspace's data when `data/` is
    # missing (see _current_data_dir), so it goes to disk only after the refs it
    # vouches for: written before the sync, a power cut could keep it and lose them.
    atomic.write_bytes(new / DEPLOY_MARKER, state_bytes, durable=repo.durable)
    if data.is_dir():
        if _exchange(new, data):
            os.rename(new, old)
        else:
            os.rename(data, old)
            os.rename(new, data)
    else:
        os.rename(new, data)
    atomic.fsync_dir(wdir)
    _finish_deploy(repo, ws)


def remove_workspace(repo: RepoStore, ws: str) -> None:
    """Delete a workspace and its data (execution cache entries stay, shared by all)."""
    check_workspace_name(ws)
    with locked(repo, ws, "exclusive", "removal"):
        if not exists(repo, ws):
            raise WorkspaceNotFound(f"workspace '{ws}' not found", workspace=ws)
        atomic.remove_file(repo.workspace_state_path(ws), durable=repo.durable)
        trash = repo.workspaces_dir / f".{ws}.removed.{new_uuid7()}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(repo.workspace_dir(ws), trash)
        shutil.rmtree(trash, ignore_errors=True)


def iter_ref_files(data_dir: Path) -> Iterator[tuple[DatasetPath, Path]]:
    """Every ``.ref`` file under a data directory, with the dataset path it stores."""
    for file in ref_file_names(data_dir):
        full = Path(file)
        yield path_from_ref_relpath(full.relative_to(data_dir).as_posix()), full


def ref_file_names(data_dir: Path) -> Iterator[str]:
    """Every ``.ref`` file under a data directory, as a string (gc reads hundreds of thousands)."""
    for dirpath, _dirs, files in os.walk(data_dir):
        for name in files:
            if name.endswith(".ref"):
                yield f"{dirpath}{os.sep}{name}"
