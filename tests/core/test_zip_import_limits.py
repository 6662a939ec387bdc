"""Package import under zip bombs: bounded memory, caps that refuse cleanly, nothing written.

The probes of issue 13 in small: a zip whose String default is a large object (its entry
a thousandth of that), a zip of many large ``data/`` entries, and a dataset tree nested
far deeper than any package has. Each import runs in this process, whose peak memory is
measured afresh for each one (``/proc/self/clear_refs``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e3.core import package_zip
from e3.errors import InvalidPackage, ValueTooLarge, spec_for
from e3.store.repository import RepoStore
from e3.store.zipfmt import ZipLimits
from fuzz import bombs
from tests_support import (
    peak_rss_kib,
    reset_peak_rss,
    run_cli,
    tree_digest,
)

MiB = 1 << 20
SMALL = ZipLimits(entry=4 * MiB, total=16 * MiB)
_BASE: dict[str, bytes] = {}


def base_zip() -> bytes:
    if "zip" not in _BASE:
        _BASE["zip"] = bombs.base_package_zip()
    return _BASE["zip"]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def import_measured(repo: RepoStore, zip_path: Path, limits: ZipLimits | None) -> int:
    """Import; returns how far this process's peak memory rose above where it started (KiB)."""
    pid = os.getpid()
    reset_peak_rss(pid)
    start = peak_rss_kib(pid)
    try:
        package_zip.import_package(repo, zip_path, limits=limits)
    finally:
        grown = peak_rss_kib(pid) - start
    return grown


def test_a_large_default_object_is_refused_over_the_entry_cap(
    repo: RepoStore, tmp_path: Path
) -> None:
    bomb = write(tmp_path, "big-default.zip", bombs.zip_with_big_default(base_zip(), 64 * MiB))
    assert bomb.stat().st_size < MiB
    digest = tree_digest(repo.root)
    pid = os.getpid()
    reset_peak_rss(pid)
    start = peak_rss_kib(pid)
    with pytest.raises(ValueTooLarge) as info:
        package_zip.import_package(repo, bomb, limits=SMALL)
    assert peak_rss_kib(pid) - start < 16 * 1024
    assert "too large" in info.value.message and str(SMALL.entry) in info.value.message
    assert tree_digest(repo.root) == digest


def test_a_large_object_within_the_caps_is_streamed_to_the_store(
    repo: RepoStore, tmp_path: Path
) -> None:
    """64 MiB object: the import used to hold it twice (read whole, then put)."""
    zip_path = write(tmp_path, "big-default.zip", bombs.zip_with_big_default(base_zip(), 64 * MiB))
    grown = import_measured(repo, zip_path, None)
    assert grown < 24 * 1024, f"peak memory grew by {grown // 1024} MiB for a 64 MiB object"
    sizes = sorted(p.stat().st_size for p in (repo.root / "objects").rglob("*.beast2"))
    assert sizes[-1] > 64 * MiB
    assert not list((repo.root / "objects").rglob("*.partial"))


def test_many_large_data_entries_are_refused_over_the_total_cap(
    repo: RepoStore, tmp_path: Path
) -> None:
    junk = write(tmp_path, "junk.zip", bombs.zip_with_junk_entries(base_zip(), 8, 64 * MiB))
    assert junk.stat().st_size < 2 * MiB
    digest = tree_digest(repo.root)
    limits = ZipLimits(entry=128 * MiB, total=100 * MiB)
    with pytest.raises(ValueTooLarge) as info:
        import_measured(repo, junk, limits)
    assert "100 MiB" in info.value.message or str(100 * MiB) in info.value.message
    assert tree_digest(repo.root) == digest


def test_large_data_entries_within_the_caps_are_never_held(repo: RepoStore, tmp_path: Path) -> None:
    """Four 64 MiB ``data/`` entries used to be kept in memory (2.1 GiB peak in the probe)."""
    junk = write(tmp_path, "junk.zip", bombs.zip_with_junk_entries(base_zip(), 4, 64 * MiB))
    grown = import_measured(repo, junk, ZipLimits(entry=128 * MiB, total=512 * MiB))
    assert grown < 24 * 1024, f"peak memory grew by {grown // 1024} MiB"


def test_a_dataset_tree_nested_1000_deep_is_an_invalid_package(
    repo: RepoStore, tmp_path: Path
) -> None:
    deep = write(tmp_path, "deep.zip", bombs.zip_with_deep_structure(base_zip(), 1000))
    digest = tree_digest(repo.root)
    with pytest.raises(InvalidPackage) as info:
        package_zip.import_package(repo, deep)
    assert "nested deeper than 64" in info.value.message
    assert tree_digest(repo.root) == digest
    res = run_cli("package", "import", repo.root, deep)
    assert res.code == spec_for(InvalidPackage).exit_code, res.err
    assert len(res.err_lines) == 1 and "nested deeper" in res.err, res.err
    assert tree_digest(repo.root) == digest


def test_a_tree_64_deep_still_imports(repo: RepoStore, tmp_path: Path) -> None:
    ok = write(tmp_path, "deep-ok.zip", bombs.zip_with_deep_structure(base_zip(), 62))
    package_zip.import_package(repo, ok)
