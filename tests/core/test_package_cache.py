"""The decoded-package cache: the same package as decoding it, and never trusted when damaged."""

from __future__ import annotations

import pytest

from e3.core import package_cache, package_zip, packages
from e3.records import package as package_record
from e3.store.repository import RepoStore


@pytest.fixture(params=["typed_data", "penguins", "hello"])
def imported(request: pytest.FixtureRequest, repo: RepoStore, build_example) -> str:
    """The hash of an example package's object in ``repo`` (several types, nested trees)."""
    info = package_zip.import_package(repo, build_example(request.param))
    return packages.resolve(repo, f"{info.name}@{info.version}").hash


def _decoded(repo: RepoStore, package_hash: str) -> package_record.PackageObject:
    return package_record.decode(repo.objects.get(package_hash))


def test_a_cached_package_equals_the_decoded_object(repo: RepoStore, imported: str) -> None:
    first = packages.read_package_object(repo, imported)
    assert package_cache.cache_path(repo, imported).is_file()
    again = package_cache.read(repo, imported)
    assert again is not None
    assert again == first == _decoded(repo, imported)
    assert packages.read_package_object(repo, imported) == first


def test_a_process_decodes_a_package_once_while_its_object_is_stored(
    repo: RepoStore, imported: str
) -> None:
    first = packages.read_package_object(repo, imported)
    package_cache.cache_path(repo, imported).unlink()
    assert packages.read_package_object(repo, imported) is first  # neither cache nor object read
    packages.forget_decoded()
    assert packages.read_package_object(repo, imported) == first


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: b"",  # a power cut before the data reached the disk
        lambda raw: raw[: len(raw) // 2],  # torn
        lambda raw: raw.replace(b"true", b"false", 1),  # valid JSON, wrong: the digest differs
        lambda raw: raw.replace(b'"layout":2', b'"layout":99', 1),  # another layout
    ],
    ids=["empty", "torn", "changed", "other-layout"],
)
def test_a_damaged_cache_is_ignored_and_rewritten(repo: RepoStore, imported: str, damage) -> None:
    packages.read_package_object(repo, imported)
    path = package_cache.cache_path(repo, imported)
    good = path.read_bytes()
    path.write_bytes(damage(good))
    assert package_cache.read(repo, imported) is None
    packages.forget_decoded()  # as a later command would: this process keeps what it decoded
    assert packages.read_package_object(repo, imported) == _decoded(repo, imported)
    assert path.read_bytes() == good


def test_a_changed_layout_with_a_matching_digest_is_ignored(repo: RepoStore, imported: str) -> None:
    import hashlib

    packages.read_package_object(repo, imported)
    path = package_cache.cache_path(repo, imported)
    body = path.read_bytes().partition(b"\n")[2].replace(b'"layout":2', b'"layout":1', 1)
    path.write_bytes(hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    assert package_cache.read(repo, imported) is None
