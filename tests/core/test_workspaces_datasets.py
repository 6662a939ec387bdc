"""Workspaces and datasets on a real repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e3.codec import beast2
from e3.codec.types import ArrayType, FloatType, IntegerType, StringType
from e3.core import datasets, package_zip, packages, workspace_zip, workspaces
from e3.errors import (
    DatasetNotFound,
    DatasetUnassigned,
    InvalidPath,
    LockConflict,
    PermissionDenied,
    TypeMismatch,
    WorkspaceExists,
    WorkspaceNotDeployed,
    WorkspaceNotFound,
)
from e3.records import dataset_ref
from e3.sdk import export
from e3.store import locks
from e3.store.repository import RepoStore
from tests_support import run_cli, versioned_hello


@pytest.fixture
def hello(repo: RepoStore, build_example) -> RepoStore:
    package_zip.import_package(repo, build_example("hello"))
    workspaces.deploy(repo, "ws", "hello")
    return repo


def test_create_list_remove(repo: RepoStore) -> None:
    workspaces.create_workspace(repo, "a-b_1")
    assert (repo.root / "workspaces" / "a-b_1.beast2").read_bytes() == b""
    with pytest.raises(WorkspaceExists):
        workspaces.create_workspace(repo, "a-b_1")
    [info] = workspaces.list_workspaces(repo)
    assert info.name == "a-b_1" and not info.deployed
    with pytest.raises(WorkspaceNotDeployed):
        datasets.get_dataset(repo, "a-b_1", ("inputs", "x"))
    workspaces.remove_workspace(repo, "a-b_1")
    assert workspaces.list_workspaces(repo) == []
    with pytest.raises(WorkspaceNotFound):
        workspaces.remove_workspace(repo, "a-b_1")


def test_deploy_writes_one_ref_per_leaf_and_pins_hash(hello: RepoStore) -> None:
    data = hello.root / "workspaces" / "ws" / "data"
    refs = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.ref"))
    assert refs == ["inputs/x.ref", "tasks/double/function_ir.ref", "tasks/double/output.ref"]
    assert dataset_ref.decode((data / "tasks/double/output.ref").read_bytes()).kind == "unassigned"
    state = workspaces.read_state(hello, "ws")
    assert state is not None
    assert state.package_hash == packages.resolve(hello, "hello").hash
    assert not (hello.root / "workspaces" / "ws" / ".data-new").exists()
    assert not (data / workspaces.DEPLOY_MARKER).exists()


def _bad_utf8(good: bytes) -> bytes:
    at = good.index(b"@") + 1  # the first byte of the 64-character hash
    return good[:at] + b"\xff" + good[at + 1 :]


@pytest.mark.parametrize("damage", [_bad_utf8, lambda good: good[:-5]], ids=["utf8", "torn"])
def test_a_damaged_ref_is_named_in_a_one_line_error(hello: RepoStore, damage) -> None:
    ref = hello.root / "workspaces" / "ws" / "data" / "inputs" / "x.ref"
    ref.write_bytes(damage(ref.read_bytes()))
    result = run_cli("get", hello.root, "ws.inputs.x")
    assert result.code != 0
    assert result.err.strip().count("\n") == 0, result.err
    assert "ws.inputs.x" in result.err and "damaged" in result.err, result.err


def test_get_set_roundtrip_and_type_check(hello: RepoStore) -> None:
    t, data = datasets.get_dataset(hello, "ws", ("inputs", "x"))
    assert t == IntegerType and data is not None
    assert beast2.decode(data, IntegerType) == 10
    h = datasets.set_dataset_value(hello, "ws", ("inputs", "x"), 21)
    assert datasets.get_value(hello, "ws", ("inputs", "x")) == (IntegerType, 21)
    ref = (hello.root / "workspaces/ws/data/inputs/x.ref").read_bytes()
    assert dataset_ref.decode(ref).hash == h
    with pytest.raises(TypeMismatch, match=r"the dataset is \.Integer but the value is \.String"):
        datasets.set_dataset_bytes(hello, "ws", ("inputs", "x"), beast2.encode("no", StringType))
    with pytest.raises(TypeMismatch):
        datasets.set_dataset_value(hello, "ws", ("inputs", "x"), "no")


def test_same_value_from_any_form_gets_one_hash(hello: RepoStore) -> None:
    from east.serialization.beast2 import (
        encode_beast2_paged_for,
        encode_beast2_with_header_for,
    )

    whole = encode_beast2_with_header_for(IntegerType, version=4)(7)
    h1 = datasets.set_dataset_bytes(hello, "ws", ("inputs", "x"), whole)
    h2 = datasets.set_dataset_value(hello, "ws", ("inputs", "x"), 7)
    assert h1 == h2
    arr = ArrayType(FloatType)
    paged = encode_beast2_paged_for(arr)([1.0, 2.0])
    assert beast2.canonicalize(paged, arr)[1] == beast2.encode([1.0, 2.0], arr)


def test_writable_and_path_errors(hello: RepoStore) -> None:
    with pytest.raises(PermissionDenied, match="not writable"):
        datasets.set_dataset_value(hello, "ws", ("tasks", "double", "output"), 1)
    with pytest.raises(DatasetNotFound, match=r"available: x"):
        datasets.get_dataset(hello, "ws", ("inputs", "nope"))
    with pytest.raises(InvalidPath, match="is a tree"):
        datasets.get_dataset(hello, "ws", ("inputs",))
    with pytest.raises(InvalidPath, match="root"):
        datasets.get_dataset(hello, "ws", ())
    with pytest.raises(DatasetUnassigned, match="pending task output"):
        datasets.get_dataset(hello, "ws", ("tasks", "double", "output"))
    with pytest.raises(WorkspaceNotFound):
        datasets.get_dataset(hello, "nows", ("inputs", "x"))


def test_list_and_status(hello: RepoStore) -> None:
    top = datasets.list_datasets(hello, "ws")
    assert [e.path for e in top] == [("inputs",), ("tasks",)]
    deep = datasets.list_datasets(hello, "ws", recursive=True)
    assert [e.path for e in deep] == [("inputs", "x"), ("tasks", "double")]
    long = datasets.list_datasets(hello, "ws", recursive=True, with_status=True)
    by = {e.path: e for e in long}
    assert by[("inputs", "x")].status == "set" and by[("inputs", "x")].size
    assert by[("tasks", "double")].status == "unset" and by[("tasks", "double")].type == IntegerType
    st = datasets.dataset_status(hello, "ws", ("inputs", "x"))
    assert st.writable and st.hash and st.size == hello.objects.info(st.hash).size


def test_redeploy_resets_data_and_new_version_switches(hello: RepoStore, tmp_path: Path) -> None:
    datasets.set_dataset_value(hello, "ws", ("inputs", "x"), 99)
    zp = tmp_path / "h2.zip"
    export(versioned_hello("2.0.0", default=5), zp)
    package_zip.import_package(hello, zp)
    info = workspaces.deploy(hello, "ws", "hello")
    assert info.version == "2.0.0"
    assert datasets.get_value(hello, "ws", ("inputs", "x")) == (IntegerType, 5)
    workspaces.deploy(hello, "ws", "hello@1.0.0")
    assert datasets.get_value(hello, "ws", ("inputs", "x")) == (IntegerType, 10)


def test_interrupted_deploy_is_seen_as_committed(hello: RepoStore, tmp_path: Path) -> None:
    """A crash after the data swap but before the state write: readers use the marker."""
    zp = tmp_path / "h2.zip"
    export(versioned_hello("2.0.0", default=5), zp)
    res = package_zip.import_package(hello, zp)
    from e3.records import workspace as wrec
    from e3.records._util import utc_now

    wdir = hello.root / "workspaces" / "ws"
    new = wdir / ".data-new"
    pkg = packages.read_package_object(hello, res.hash)
    state = wrec.WorkspaceState("hello", "2.0.0", res.hash, utc_now())
    new.mkdir()
    workspaces._write_data_dir(hello, new, pkg)
    (new / workspaces.DEPLOY_MARKER).write_bytes(wrec.encode(state))
    os.rename(wdir / "data", wdir / ".data-old")
    os.rename(new, wdir / "data")  # ... and the process dies here
    assert workspaces.read_state(hello, "ws").package_version == "2.0.0"  # type: ignore[union-attr]
    assert datasets.get_value(hello, "ws", ("inputs", "x")) == (IntegerType, 5)
    workspaces.deploy(hello, "ws", "hello@2.0.0")  # the next exclusive operation tidies up
    assert not (wdir / ".data-old").exists()
    assert not (wdir / "data" / workspaces.DEPLOY_MARKER).exists()


def test_deploy_refused_while_workspace_is_in_use(hello: RepoStore) -> None:
    held = locks.acquire(
        hello.workspace_lock_path("ws"), "shared", operation="dataflow", label="workspace 'ws'"
    )
    try:
        with pytest.raises(LockConflict, match=f"pid {os.getpid()}"):
            workspaces.deploy(hello, "ws", "hello")
        datasets.set_dataset_value(hello, "ws", ("inputs", "x"), 3)  # shared: allowed
    finally:
        held.release()


def test_export_import_workspace(hello: RepoStore, tmp_path: Path) -> None:
    datasets.set_dataset_value(hello, "ws", ("inputs", "x"), 42)
    out = tmp_path / "ws.zip"
    res = workspace_zip.export_workspace(hello, "ws", out, version="9.0.0")
    assert (res.name, res.version) == ("hello", "9.0.0")
    other, _ = __import__("e3.store.repository").store.repository.create_repository(
        tmp_path / "other"
    )
    workspace_zip.import_workspace(other, "copy", out)
    assert datasets.get_value(other, "copy", ("inputs", "x")) == (IntegerType, 42)
    default_version = workspace_zip.export_workspace(hello, "ws", tmp_path / "w2.zip")
    assert default_version.version.startswith("1.0.0-")


def test_weird_field_names_roundtrip(repo: RepoStore, tmp_path: Path) -> None:
    import e3

    names = ["a/b", "..", ".", "x.ref", "100%", "with space", "ünï"]
    items = [e3.input(n, IntegerType, default=i) for i, n in enumerate(names)]
    zp = tmp_path / "w.zip"
    export(e3.package("weird", "1.0.0", *items), zp)
    package_zip.import_package(repo, zp)
    workspaces.deploy(repo, "ws", "weird")
    for i, n in enumerate(names):
        assert datasets.get_value(repo, "ws", ("inputs", n)) == (IntegerType, i)
    data = repo.root / "workspaces" / "ws" / "data"
    for p in data.rglob("*"):
        assert data in p.resolve().parents or p.resolve() == data


def test_workspace_export_carries_the_last_run(
    repo: RepoStore, build_example, tmp_path: Path
) -> None:
    """The importing repository finds the exported results in its cache and logs."""
    from e3.core import executions
    from e3.dataflow.scheduler import run_sync
    from e3.store.repository import create_repository
    from tests_support import run_cli

    package_zip.import_package(repo, build_example("platform_calls"))
    workspaces.deploy(repo, "ws", "platform")
    run_sync(repo, "ws")
    out = tmp_path / "ws.zip"
    workspace_zip.export_workspace(repo, "ws", out, version="2.0.0")
    import zipfile

    with zipfile.ZipFile(out) as z:
        names = z.namelist()
    assert any(n.startswith("dataflows/ws/") for n in names)
    assert any(n.endswith("/stdout.txt") for n in names)
    other, _ = create_repository(tmp_path / "other")
    workspace_zip.import_workspace(other, "copy", out)
    again = run_sync(other, "copy")
    assert (again.counts.cached, again.counts.executed) == (1, 0)
    logs = run_cli("logs", other.root, "copy.fingerprint")
    assert "fingerprint of east" in logs.out
    dep = workspaces.open_deployed(other, "copy")
    (ex,) = list(executions.all_for_task(other, dep.package.tasks["fingerprint"]))
    assert ex.status is not None and ex.status.state == "success"


def test_a_deploy_cut_short_is_not_a_verify_problem_until_it_is_marked(hello: RepoStore) -> None:
    """Refs of an unmarked `.data-new/` are written in place and may be torn; nothing reads them."""
    new = hello.root / "workspaces" / "ws" / ".data-new"
    new.mkdir()
    workspaces._write_data_dir(hello, new, packages.read_package_object(hello, _hello_hash(hello)))
    torn = next(new.rglob("*.ref"))
    torn.write_bytes(torn.read_bytes()[:3])  # the process died mid-write
    assert run_cli("repo", "verify", hello.root).code == 0
    (new / workspaces.DEPLOY_MARKER).write_bytes(b"")  # now it would stand in for data/
    checked = run_cli("repo", "verify", hello.root)
    assert checked.code != 0
    assert str(torn.relative_to(hello.root)) in checked.out + checked.err
    workspaces.deploy(hello, "ws", "hello")  # the next deployment removes it
    assert not new.exists()
    assert run_cli("repo", "verify", hello.root).code == 0


def _hello_hash(repo: RepoStore) -> str:
    return next(p.hash for p in packages.list_packages(repo) if p.name == "hello")
