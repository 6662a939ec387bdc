"""Package zips: export a package with every object it needs, import one safely.

Import is validate-then-write. Pass 1 streams every entry, checks its name,
checks each object's SHA-256 against its entry name, and validates the package
as a whole (its object decodes, every task and value it references is present,
values have their declared types, the task graph is well formed). Only then
does pass 2 write objects, and finally the package ref, which is the commit
point. If pass 2 fails (disk full…), the objects it added are removed, so a
failed import leaves the repository as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from e3.base import atomic
from e3.base.names import (
    ObjectHash,
    check_package_name,
    check_version,
    check_workspace_name,
    is_execution_id,
    is_hash,
)
from e3.base.paths import ref_relpath
from e3.errors import (
    DecodeError,
    E3Error,
    InvalidName,
    InvalidPackage,
    PackageExists,
    TypeMismatch,
)
from e3.model.results import ExportResult, ImportResult
from e3.records import dataset_ref, structure
from e3.records import package as package_record
from e3.records.package import PackageObject
from e3.store.objects import ObjectStore, object_relpath
from e3.store.repository import RepoStore

if TYPE_CHECKING:  # zipfile is imported only by commands that read or write zips
    from e3.store.zipfmt import SafeZip, ZipEntry


from e3.core.package_check import ObjectLookup, package_closure, validate_package
from e3.core.packages import resolve

_OBJECT_PREFIX = "objects/"
_HEADER_PREFIX_BYTES = 1 << 20


# ── export ──────────────────────────────────────────────────────────────────


def package_zip_entries(
    objects: ObjectStore,
    name: str,
    version: str,
    pkg_hash: str,
    pkg: PackageObject,
    hashes: Iterable[str],
) -> dict[str, bytes]:
    """The entries of a package zip (objects, readable ``data/`` refs, the package ref)."""
    entries: dict[str, bytes] = {}
    for h in hashes:
        entries[object_relpath(h)] = objects.get(h)
    for path, _spec in structure.leaves(pkg.structure):
        ref = pkg.refs.get(path, dataset_ref.DatasetRef.unassigned())
        entries["data/" + ref_relpath(path)] = dataset_ref.encode(ref)
    entries[f"packages/{name}/{version}"] = (pkg_hash + "\n").encode()
    return entries


def export_package(repo: RepoStore, spec: str, out: Path) -> ExportResult:
    """Write a package (and every object it needs) as a deterministic zip."""
    info = resolve(repo, spec)
    pkg, objs = package_closure(repo, info.hash)
    from e3.store.zipfmt import write_zip

    entries = package_zip_entries(
        repo.objects, info.name, info.version, info.hash, pkg, sorted(objs)
    )
    size = write_zip(out, entries, durable=repo.durable)
    return ExportResult(info.name, info.version, info.hash, len(objs), size)


# ── import ──────────────────────────────────────────────────────────────────


@dataclass
class _Staged:
    """What pass 1 learned about a zip."""

    package_refs: dict[tuple[str, str], str] = field(default_factory=dict)
    objects: dict[str, ZipEntry] = field(default_factory=dict)
    # Object bytes kept for validation: whole for small objects, a header prefix otherwise.
    heads: dict[str, bytes] = field(default_factory=dict)
    executions: dict[str, dict[str, ZipEntry]] = field(default_factory=dict)
    runs: dict[str, ZipEntry] = field(default_factory=dict)


def _scan_zip(zf: SafeZip) -> _Staged:
    staged = _Staged()
    seen: dict[str, bytes] = {}  # non-object entry name -> content, for duplicate checks
    for entry in zf.entries():
        name = entry.name
        if name.startswith(_OBJECT_PREFIX):
            parts = name.split("/")
            if len(parts) != 3 or len(parts[1]) != 2 or not parts[2].endswith(".beast2"):
                raise InvalidPackage(f"{zf.label}: unexpected object entry {name!r}")
            h = parts[1] + parts[2][: -len(".beast2")]
            if not is_hash(h):
                raise InvalidPackage(f"{zf.label}: object entry {name!r} is not named by a hash")
            digest = hashlib.sha256()
            head = bytearray()
            for chunk in zf.chunks(entry):
                digest.update(chunk)
                if len(head) < _HEADER_PREFIX_BYTES:
                    head += chunk[: _HEADER_PREFIX_BYTES - len(head)]
            if digest.hexdigest() != h:
                raise InvalidPackage(
                    f"{zf.label}: object {name!r} does not match its hash "
                    f"(content hashes to {digest.hexdigest()[:12]}…)"
                )
            staged.objects[h] = entry  # duplicates with the same hash are the same bytes
            if entry.info.file_size <= _HEADER_PREFIX_BYTES:
                staged.heads[h] = bytes(head)
            else:
                staged.heads.setdefault(h, bytes(head))
            continue
        if name.startswith("packages/"):
            parts = name.split("/")[1:]
            if len(parts) == 3 and parts[0].startswith("@"):
                pname, version = f"{parts[0]}/{parts[1]}", parts[2]
            elif len(parts) == 2:
                pname, version = parts
            else:
                raise InvalidPackage(f"{zf.label}: unexpected package entry {name!r}")
            try:
                check_package_name(pname)
                check_version(version)
            except InvalidName as exc:
                raise InvalidPackage(f"{zf.label}: {exc.message}") from exc
            text = zf.read(entry, limit=1024).decode("utf-8", "replace").strip()
            if not is_hash(text):
                raise InvalidPackage(f"{zf.label}: package entry {name!r} does not hold a hash")
            previous = staged.package_refs.get((pname, version))
            if previous is not None and previous != text:
                raise InvalidPackage(f"{zf.label}: duplicate entry {name!r} with different content")
            staged.package_refs[(pname, version)] = text
            continue
        content_check = name.startswith(("dataflows/", "executions/", "data/"))
        if content_check:
            data = zf.read(entry)
            if name in seen and seen[name] != data:
                raise InvalidPackage(f"{zf.label}: duplicate entry {name!r} with different content")
            seen[name] = data
        if name.startswith("executions/"):
            parts = name.split("/")
            if (
                len(parts) != 5
                or not is_hash(parts[1])
                or not is_hash(parts[2])
                or not is_execution_id(parts[3])
                or parts[4] not in ("status.beast2", "output", "stdout.txt", "stderr.txt")
            ):
                raise InvalidPackage(f"{zf.label}: unexpected execution entry {name!r}")
            staged.executions.setdefault("/".join(parts[1:4]), {})[parts[4]] = entry
        elif name.startswith("dataflows/"):
            parts = name.split("/")
            if (
                len(parts) != 3
                or not parts[2].endswith(".beast2")
                or not is_execution_id(parts[2][: -len(".beast2")])
            ):
                raise InvalidPackage(f"{zf.label}: unexpected dataflow entry {name!r}")
            staged.runs["/".join(parts[1:])] = entry
        # data/** refs are redundant with the package object; anything else is
        # ignored for forward compatibility.
    return staged


def _validate_history(zf: SafeZip, staged: _Staged) -> dict[str, bytes]:
    """Check execution and run records of a workspace export; returns their files to write."""
    from e3.records import dataflow as dataflow_record
    from e3.records import execution

    files: dict[str, bytes] = {}
    for key, parts in staged.executions.items():
        status_entry = parts.get("status.beast2")
        if status_entry is None:
            raise InvalidPackage(f"{zf.label}: execution {key} has no status.beast2")
        data = zf.read(status_entry)
        try:
            status = execution.decode(data)
        except DecodeError as exc:
            raise InvalidPackage(f"{zf.label}: execution {key} status does not decode") from exc
        if status.state == "success" and not (
            status.output_hash and (status.output_hash in staged.objects)
        ):
            raise InvalidPackage(f"{zf.label}: execution {key} output object is missing")
        files[f"executions/{key}/status.beast2"] = data
        for fname in ("stdout.txt", "stderr.txt"):
            if fname in parts:
                files[f"executions/{key}/{fname}"] = zf.read(parts[fname], limit=1 << 30)
        if status.state == "success":
            files[f"executions/{key}/output"] = f"{status.output_hash}\n".encode()
    for key, entry in staged.runs.items():
        data = zf.read(entry)
        try:
            dataflow_record.decode(data)
        except DecodeError as exc:
            raise InvalidPackage(f"{zf.label}: dataflow record {key} does not decode") from exc
        ws = key.split("/")[0]
        try:
            check_workspace_name(ws)
        except InvalidName as exc:
            raise InvalidPackage(f"{zf.label}: {exc.message}") from exc
        files[f"dataflows/{key}"] = data
    return files


@dataclass
class _Checked:
    """A zip that passed validation: what it holds and what importing it must write."""

    name: str
    version: str
    pkg_hash: str
    reachable: set[ObjectHash]
    history: dict[str, bytes]


def import_package(repo: RepoStore, zip_path: Path, *, force: bool = False) -> ImportResult:
    """Import a package zip (validated in full before anything is written).

    Re-importing the same ``name@version`` with the same content is a no-op;
    with different content it is refused unless ``force`` replaces it.

    Raises:
        InvalidPackage: the zip is corrupt, unsafe or not a valid package.
        PackageExists: name@version exists with different content.
    """
    from e3.store.zipfmt import SafeZip

    label = str(zip_path)
    with SafeZip(Path(zip_path), label) as zf:
        staged = _scan_zip(zf)
        checked = _check(repo, zf, staged, label)
        name, version, pkg_hash = checked.name, checked.version, checked.pkg_hash
        existing = atomic.read_bytes(repo.package_ref_path(name, version))
        replaced = False
        if existing is not None:
            current = existing.decode("utf-8", "replace").strip()
            if current == pkg_hash and not checked.history:
                return ImportResult(name, version, pkg_hash, len(checked.reachable), 0)
            if current != pkg_hash:
                if not force:
                    raise PackageExists(
                        f"package {name}@{version} already exists with different content "
                        "(use --force to replace it)",
                        packageName=name,
                        version=version,
                    )
                replaced = True
        added = _write(repo, zf, staged, checked, first=existing is None, replace=replaced)
    return ImportResult(name, version, pkg_hash, len(checked.reachable), added, replaced)


def _check(repo: RepoStore, zf: SafeZip, staged: _Staged, label: str) -> _Checked:
    """Pass 1's verdict on the whole archive (nothing written yet)."""
    if not staged.package_refs:
        raise InvalidPackage(f"{label}: no packages/<name>/<version> entry (missing package ref)")
    if len(staged.package_refs) > 1:
        names = ", ".join(f"{n}@{v}" for n, v in sorted(staged.package_refs))
        raise InvalidPackage(f"{label}: more than one package in the archive ({names})")
    (name, version), pkg_hash = next(iter(staged.package_refs.items()))

    def repo_get(h: str) -> bytes | None:
        try:
            return repo.objects.get(h)
        except E3Error:
            return None

    lookup = ObjectLookup(staged.heads, repo_get)
    pkg_bytes = lookup.get(pkg_hash)
    if pkg_bytes is None:
        raise InvalidPackage(f"{label}: package object {pkg_hash[:12]}… is missing")
    if pkg_hash in staged.objects and staged.objects[pkg_hash].info.file_size > len(pkg_bytes):
        pkg_bytes = zf.read(staged.objects[pkg_hash], limit=1 << 30)
    try:
        pkg = package_record.decode(pkg_bytes)
    except (DecodeError, TypeMismatch) as exc:
        raise InvalidPackage(f"{label}: package object does not decode ({exc.message})") from exc
    reachable = validate_package(pkg, lookup.get, label)
    reachable.add(ObjectHash(pkg_hash))
    history = _validate_history(zf, staged)
    from e3.records import execution

    for key in staged.executions:
        status = execution.decode(history[f"executions/{key}/status.beast2"])
        if status.output_hash:
            reachable.add(ObjectHash(status.output_hash))
    return _Checked(name, version, pkg_hash, reachable, history)


def _write(
    repo: RepoStore, zf: SafeZip, staged: _Staged, c: _Checked, *, first: bool, replace: bool
) -> int:
    """Pass 2: objects, history, one sync, then the package ref (the commit point).

    On any failure what was added is removed again. Returns the number of new objects.
    """
    added_objects: list[str] = []
    added_files: list[Path] = []
    try:
        for h in sorted(c.reachable):
            if repo.objects.has(h):
                continue
            entry = staged.objects.get(h)
            if entry is None:
                continue  # validated as present in the repository
            data = zf.read(entry, limit=1 << 40)
            if hashlib.sha256(data).hexdigest() != h:  # the file changed under us
                raise InvalidPackage(f"{zf.label}: object {h[:12]}… changed during import")
            repo.objects.put(data, sync=False)
            added_objects.append(h)
        for rel, data in sorted(c.history.items()):
            target = repo.root / rel
            if target.exists():
                continue
            atomic.write_bytes(target, data, durable=repo.durable)
            added_files.append(target)
        if repo.durable:  # every object is on disk before the ref that commits them
            atomic.sync_filesystem(repo.root)
        ref_path = repo.package_ref_path(c.name, c.version)
        ref_data = (c.pkg_hash + "\n").encode()
        if first:
            if not atomic.create_exclusive(ref_path, ref_data, durable=repo.durable):
                raise PackageExists(
                    f"package {c.name}@{c.version} was imported concurrently",
                    packageName=c.name,
                    version=c.version,
                )
        elif replace:
            atomic.write_bytes(ref_path, ref_data, durable=repo.durable)
    except BaseException:
        for added in added_objects:
            repo.objects.delete(added)
        for p in added_files:
            atomic.remove_file(p, durable=False)
            atomic.prune_empty_dirs(p.parent, repo.root)
        raise
    return len(added_objects)
