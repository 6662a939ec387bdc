"""Garbage collection: roots are kept, orphans go, young objects and dry runs are safe."""

from __future__ import annotations

import os
import time
from pathlib import Path

from e3.core import datasets, gc, package_cache, package_zip, packages, workspaces
from e3.model.retention import GcPolicy
from e3.store.repository import RepoStore


def age(repo: RepoStore, seconds: float = 3600) -> None:
    """Make every object look old."""
    past = time.time() - seconds
    for h in repo.objects.hashes():
        os.utime(repo.objects.path_of(h), (past, past))


def test_empty_repo(repo: RepoStore) -> None:
    res = gc.collect(repo, GcPolicy(min_age_seconds=0))
    assert (res.retained_objects, res.deleted_objects, res.deleted_partials) == (0, 0, 0)


def test_orphans_deleted_roots_kept(repo: RepoStore, build_example) -> None:
    package_zip.import_package(repo, build_example("hello"))
    workspaces.deploy(repo, "ws", "hello")
    kept_before = set(repo.objects.hashes())
    orphan = repo.objects.put(b"orphan")
    age(repo)
    res = gc.collect(repo)
    assert res.deleted_objects == 1 and res.bytes_freed == len(b"orphan")
    assert not repo.objects.has(orphan)
    assert set(repo.objects.hashes()) == kept_before


def test_young_objects_survive(repo: RepoStore) -> None:
    h = repo.objects.put(b"just written")
    res = gc.collect(repo)  # default min age 60 s
    assert res.skipped_young == 1 and repo.objects.has(h)


def test_dry_run_deletes_nothing(repo: RepoStore) -> None:
    h = repo.objects.put(b"orphan")
    age(repo)
    res = gc.collect(repo, GcPolicy(dry_run=True))
    assert res.deleted_objects == 1 and res.dry_run
    assert repo.objects.has(h)


def test_values_set_in_workspace_are_roots(repo: RepoStore, build_example) -> None:
    package_zip.import_package(repo, build_example("hello"))
    workspaces.deploy(repo, "ws", "hello")
    h = datasets.set_dataset_value(repo, "ws", ("inputs", "x"), 1234)
    packages.remove_package(repo, "hello")
    age(repo)
    gc.collect(repo)
    assert repo.objects.has(h)
    # The deployed package is a root even after its ref was removed.
    assert datasets.get_value(repo, "ws", ("inputs", "x"))[1] == 1234


def test_removed_package_is_collected(repo: RepoStore, build_example) -> None:
    package_zip.import_package(repo, build_example("hello"))
    packages.remove_package(repo, "hello")
    age(repo)
    res = gc.collect(repo)
    assert res.retained_objects == 0 and list(repo.objects.hashes()) == []
    assert list((repo.root / "objects").iterdir()) == []


def test_the_decoded_forms_of_collected_packages_go_with_them(
    repo: RepoStore, build_example
) -> None:
    package_zip.import_package(repo, build_example("hello"))
    package_zip.import_package(repo, build_example("diamond"))
    hello, diamond = packages.resolve(repo, "hello").hash, packages.resolve(repo, "diamond").hash
    for h in (hello, diamond):
        packages.read_package_object(repo, h)
        assert package_cache.cache_path(repo, h).is_file()
    packages.remove_package(repo, "hello")
    assert gc.collect(repo, GcPolicy(dry_run=True, min_age_seconds=0)).deleted_objects > 0
    assert package_cache.cache_path(repo, hello).is_file()  # a dry run changes nothing
    age(repo)
    gc.collect(repo)
    assert not package_cache.cache_path(repo, hello).exists()
    assert package_cache.cache_path(repo, diamond).is_file()  # still deployed-able: kept


def test_execution_outputs_are_roots(repo: RepoStore) -> None:
    out = repo.objects.put(b"task output")
    d = repo.execution_dir("a" * 64, "b" * 64, "0190d6b2-4b2a-7c3d-8e4f-0123456789ab")
    d.mkdir(parents=True)
    (d / "output").write_text(out + "\n")
    age(repo)
    gc.collect(repo)
    assert repo.objects.has(out)


def test_stale_partials_removed(repo: RepoStore) -> None:
    h = repo.objects.put(b"x")
    stale = repo.objects.path_of(h).with_name("junk.beast2.1.abcd.partial")
    fresh = repo.objects.path_of(h).with_name("junk2.beast2.1.abcd.partial")
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    past = time.time() - 3600
    os.utime(stale, (past, past))
    res = gc.collect(repo)
    assert res.deleted_partials == 1
    assert not stale.exists() and fresh.exists()


def test_gc_keeps_everything_reachable(repo: RepoStore, build_example, tmp_path: Path) -> None:
    for name in ("hello", "diamond", "typed_data"):
        package_zip.import_package(repo, build_example(name))
        workspaces.deploy(repo, name, name)
    before = {h: repo.objects.get(h) for h in repo.objects.hashes()}
    age(repo)
    res = gc.collect(repo, GcPolicy(min_age_seconds=0))
    assert res.deleted_objects == 0
    assert {h: repo.objects.get(h) for h in repo.objects.hashes()} == before
