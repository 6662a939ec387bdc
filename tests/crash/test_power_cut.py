"""What a power cut leaves, rebuilt by hand: torn objects.

The power-cut explorer (``python -m fuzz powercut``) found these states; here each
is made directly in a real repository and the next command must cope:

* a run or an import renames objects into place before the one sync that makes
  their bytes durable (nothing refers to them until after it), so a power cut can
  leave an empty or zero-filled file under an object's name. ``verify`` counts such
  an unreferenced object as a leftover for gc, not as damage; the next write of the
  same bytes (``put``, an import) replaces it instead of trusting it.

(A run a dead engine left ``running`` is closed by the next start:
``tests/dataflow/test_run_records.py``.)
"""

from __future__ import annotations

import json
from pathlib import Path

from e3.core import packages
from e3.core.package_zip import import_package
from e3.sdk import export
from e3.store.repository import RepoStore
from tests_support import run_cli, versioned_hello


def _tear(path: Path, *, zero_fill: bool) -> None:
    """What ext4 may leave of an unsynced file: its size with lost pages, or nothing."""
    size = path.stat().st_size
    path.chmod(0o644)
    path.write_bytes(b"\0" * size if zero_fill else b"")


def test_put_replaces_a_torn_object_of_the_right_size(repo: RepoStore) -> None:
    data = b"an object whose bytes a power cut lost" * 100
    h = repo.objects.put(data, sync=False)
    _tear(repo.objects.path_of(h), zero_fill=True)  # same size, wrong bytes
    assert repo.objects.put(data) == h
    assert repo.objects.get(h, verify=True) == data


def test_verify_counts_an_unreferenced_torn_object_as_a_leftover(repo: RepoStore) -> None:
    h = repo.objects.put(b"written by a run cut short before its batch's sync", sync=False)
    _tear(repo.objects.path_of(h), zero_fill=False)
    result = run_cli("repo", "verify", repo.root, "--json")
    report = json.loads(result.out)
    assert result.code == 0, result.out
    assert report["problems"] == []
    assert report["partial_files"] == 1


def test_verify_still_reports_a_torn_object_that_something_refers_to(
    repo: RepoStore, tmp_path: Path
) -> None:
    zip_path = tmp_path / "hello.zip"
    export(versioned_hello("1.0.0"), zip_path)
    info = import_package(repo, zip_path)
    _tear(repo.objects.path_of(info.hash), zero_fill=False)
    result = run_cli("repo", "verify", repo.root, "--json")
    assert result.code == 7
    assert any(info.hash[:12] in p for p in json.loads(result.out)["problems"])


def test_an_import_after_a_power_cut_replaces_the_objects_it_tore(
    repo: RepoStore, tmp_path: Path
) -> None:
    # The state a power cut during `package import` may leave: its objects in place but
    # torn (written before the import's sync), and no package ref (written after it).
    zip_path = tmp_path / "hello.zip"
    export(versioned_hello("1.0.0"), zip_path)
    info = import_package(repo, zip_path)
    for h in repo.objects.hashes():
        _tear(repo.objects.path_of(h), zero_fill=h[0] in "01234567")
    repo.package_ref_path("hello", "1.0.0").unlink()
    assert run_cli("repo", "verify", repo.root).code == 0  # only leftovers so far
    assert run_cli("package", "import", repo.root, zip_path).code == 0
    assert run_cli("repo", "verify", repo.root).code == 0
    assert packages.read_package_object(repo, info.hash).tasks
    assert run_cli("workspace", "deploy", repo.root, "ws", "hello").code == 0
    assert run_cli("start", repo.root, "ws").code == 0
    assert run_cli("get", repo.root, "ws.tasks.double").out.strip() == "20"
