"""Packages in a repository: list, resolve ``name[@version]``, read, remove.

A package ref is the file ``packages/<name>/<version>`` holding the hash of the
package object. Importing and exporting zips is :mod:`e3.core.package_zip`;
checking a package's integrity is :mod:`e3.core.package_check`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from e3.base import atomic
from e3.base.names import (
    is_hash,
    parse_package_spec,
)
from e3.base.versions import version_key
from e3.core import package_cache
from e3.errors import (
    DecodeError,
    InvalidPackage,
    PackageNotFound,
)
from e3.model.listings import PackageInfo
from e3.records import package as package_record
from e3.records.package import PackageObject
from e3.store.repository import RepoStore

if TYPE_CHECKING:  # zipfile is imported only by commands that read or write zips
    pass


# ── listing and resolution ──────────────────────────────────────────────────


def list_packages(repo: RepoStore) -> list[PackageInfo]:
    """Every imported package, sorted by name, then by version order."""
    found: list[PackageInfo] = []
    root = repo.packages_dir

    def scan(dir_: Path, name: str) -> None:
        try:
            versions = sorted(os.listdir(dir_))
        except (FileNotFoundError, NotADirectoryError):
            return
        for v in versions:
            if v.endswith(atomic.PARTIAL_SUFFIX):
                continue
            data = atomic.read_bytes(dir_ / v)
            if data is None:
                continue
            h = data.decode("utf-8", "replace").strip()
            if is_hash(h):
                found.append(PackageInfo(name, v, h))

    try:
        top = sorted(os.listdir(root))
    except FileNotFoundError:
        top = []
    for entry in top:
        path = root / entry
        if not path.is_dir():
            continue
        if entry.startswith("@"):  # a scope: one more directory level
            for sub in sorted(os.listdir(path)):
                if (path / sub).is_dir():
                    scan(path / sub, f"{entry}/{sub}")
        else:
            scan(path, entry)
    found.sort(key=lambda p: (p.name, version_key(p.version)))
    return found


def resolve(repo: RepoStore, spec: str) -> PackageInfo:
    """``name`` (highest version) or ``name@version`` to a package.

    Raises:
        PackageNotFound: no such package or version.
    """
    name, version = parse_package_spec(spec)
    if version is not None:
        data = atomic.read_bytes(repo.package_ref_path(name, version))
        if data is None:
            raise PackageNotFound(
                f"package {name}@{version} not found", packageName=name, version=version
            )
        h = data.decode("utf-8", "replace").strip()
        if not is_hash(h):
            raise InvalidPackage(f"package ref {name}@{version} is damaged")
        return PackageInfo(name, version, h)
    candidates = [p for p in list_packages(repo) if p.name == name]
    if not candidates:
        raise PackageNotFound(f"package {name} not found", packageName=name)
    return max(candidates, key=lambda p: version_key(p.version))


#: Packages decoded in this process, by (repository, hash): most recent last.
_DECODED: dict[tuple[str, str], PackageObject] = {}
_DECODED_KEPT = 8


def read_package_object(repo: RepoStore, hash_: str) -> PackageObject:
    """Decode a package object from the store.

    Once per package and process: a package object never changes, and reading
    even its decoded form back (:mod:`package_cache`) costs about 0.1 s for
    10,000 tasks, which a server paid on every request and ``e3 logs`` three
    times. The object must still be in the store (a stat) for the kept copy to
    be used.
    """
    key = (str(repo.root), hash_)
    kept = _DECODED.get(key)
    if kept is not None and repo.objects.has(hash_):
        return kept
    pkg = _read_package_object(repo, hash_)
    _DECODED.pop(key, None)
    if len(_DECODED) >= _DECODED_KEPT:
        del _DECODED[next(iter(_DECODED))]
    _DECODED[key] = pkg
    return pkg


def forget_decoded() -> None:
    """Drop the packages this process keeps decoded (the next read starts from the store)."""
    _DECODED.clear()


def _read_package_object(repo: RepoStore, hash_: str) -> PackageObject:
    cached = package_cache.read(repo, hash_)
    if cached is not None:
        return cached
    try:
        pkg = package_record.decode(repo.objects.get(hash_))
    except DecodeError as exc:
        raise InvalidPackage(
            f"package object {hash_[:12]}… does not decode: {exc.message}"
        ) from exc
    package_cache.write(repo, hash_, pkg)
    return pkg


def remove_package(repo: RepoStore, spec: str) -> PackageInfo:
    """Remove a package ref (its objects stay until ``repo gc``)."""
    info = resolve(repo, spec)
    path = repo.package_ref_path(info.name, info.version)
    atomic.remove_file(path, durable=repo.durable)
    # Tidy empty name (and scope) directories.
    parent = path.parent
    while parent != repo.packages_dir:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
    return info
