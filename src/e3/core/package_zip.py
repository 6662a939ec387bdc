"""Package zips: export a package with every object it needs, import one safely.

Import is validate-then-write. Pass 1 streams every entry, checks its name,
checks each object's SHA-256 against its entry name, and validates the package
as a whole (its object decodes, every task and value it references is present,
values have their declared types, the task graph is well formed). Only then
does pass 2 write objects, and finally the package ref, which is the commit
point. If pass 2 fails (disk full…), the objects it added are removed, so a
failed import leaves the repository as it was.

Archives are hostile until proven otherwise: entries are streamed (objects
and logs go from the decompressor to the store chunk by chunk), what they
decompress to is capped per entry and in total (:class:`~e3.store.zipfmt.ZipLimits`),
the validation keeps at most a bounded amount of object bytes, and records are
decoded with a bound on their decoded size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

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
    CorruptObject,
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
    from e3.store.zipfmt import SafeZip, ZipEntry, ZipLimits


from e3.core.package_check import ObjectLookup, package_closure, validate_package
from e3.core.packages import resolve

_OBJECT_PREFIX = "objects/"
#: Object bytes validation sees of a large object: its header (types are at most 16 KiB).
_HEADER_PREFIX_BYTES = 1 << 20
#: Object bytes pass 1 keeps for validation, over all objects; past it, validation
#: reads an object's head from the archive again when it needs it.
_HEADS_BUDGET = 64 << 20
#: Largest record entry (package ref, ``data/`` ref, execution status, run record).
_RECORD_BYTES = 16 << 20
#: Most bytes a record from an archive may decode to.
_RECORD_DECODED = 64 << 20


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
    # Object bytes kept for validation: whole for small objects, a header prefix
    # otherwise, until _HEADS_BUDGET is spent (then read again on demand).
    heads: dict[str, bytes] = field(default_factory=dict)
    heads_size: int = 0
    executions: dict[str, dict[str, ZipEntry]] = field(default_factory=dict)
    runs: dict[str, ZipEntry] = field(default_factory=dict)


def _scan_object(zf: SafeZip, entry: ZipEntry, staged: _Staged) -> None:
    """Check an ``objects/…`` entry's name and hash (streamed); keep its head if there is room."""
    name = entry.name
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
    if h not in staged.heads and staged.heads_size + len(head) <= _HEADS_BUDGET:
        staged.heads[h] = bytes(head)
        staged.heads_size += len(head)


def _scan_package_ref(zf: SafeZip, entry: ZipEntry, staged: _Staged) -> None:
    name = entry.name
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


def _scan_history(zf: SafeZip, entry: ZipEntry, staged: _Staged) -> None:
    """Note an ``executions/…`` or ``dataflows/…`` entry (validated with the package)."""
    name = entry.name
    parts = name.split("/")
    if name.startswith("executions/"):
        if (
            len(parts) != 5
            or not is_hash(parts[1])
            or not is_hash(parts[2])
            or not is_execution_id(parts[3])
            or parts[4] not in ("status.beast2", "output", "stdout.txt", "stderr.txt")
        ):
            raise InvalidPackage(f"{zf.label}: unexpected execution entry {name!r}")
        staged.executions.setdefault("/".join(parts[1:4]), {})[parts[4]] = entry
    else:
        if (
            len(parts) != 3
            or not parts[2].endswith(".beast2")
            or not is_execution_id(parts[2][: -len(".beast2")])
        ):
            raise InvalidPackage(f"{zf.label}: unexpected dataflow entry {name!r}")
        staged.runs["/".join(parts[1:])] = entry


def _scan_zip(zf: SafeZip) -> _Staged:
    staged = _Staged()
    seen: dict[str, str] = {}  # record entry name -> hash of its content, for duplicates
    for entry in zf.entries():
        name = entry.name
        if name.startswith(_OBJECT_PREFIX):
            _scan_object(zf, entry, staged)
            continue
        if name.startswith("packages/"):
            _scan_package_ref(zf, entry, staged)
            continue
        if name.startswith(("dataflows/", "executions/", "data/")):
            digest = hashlib.sha256()
            for chunk in zf.chunks(entry):  # logs may be large: streamed, never kept
                digest.update(chunk)
            if seen.setdefault(name, digest.hexdigest()) != digest.hexdigest():
                raise InvalidPackage(f"{zf.label}: duplicate entry {name!r} with different content")
        if name.startswith(("executions/", "dataflows/")):
            _scan_history(zf, entry, staged)
        # data/** refs are redundant with the package object; anything else is
        # ignored for forward compatibility.
    return staged


#: A file pass 2 writes: a record's bytes, or a zip entry streamed to it.
_HistoryFile: TypeAlias = "bytes | ZipEntry"


def _validate_history(zf: SafeZip, staged: _Staged) -> dict[str, _HistoryFile]:
    """Check execution and run records of a workspace export; returns their files to write."""
    from e3.records import dataflow as dataflow_record
    from e3.records import execution

    files: dict[str, _HistoryFile] = {}
    for key, parts in staged.executions.items():
        status_entry = parts.get("status.beast2")
        if status_entry is None:
            raise InvalidPackage(f"{zf.label}: execution {key} has no status.beast2")
        data = zf.read(status_entry, limit=_RECORD_BYTES)
        try:
            status = execution.decode(data, limit=_RECORD_DECODED)
        except DecodeError as exc:
            raise InvalidPackage(f"{zf.label}: execution {key} status does not decode") from exc
        if status.state == "success" and not (
            status.output_hash and (status.output_hash in staged.objects)
        ):
            raise InvalidPackage(f"{zf.label}: execution {key} output object is missing")
        files[f"executions/{key}/status.beast2"] = data
        for fname in ("stdout.txt", "stderr.txt"):
            if fname in parts:
                files[f"executions/{key}/{fname}"] = parts[fname]
        if status.state == "success":
            files[f"executions/{key}/output"] = f"{status.output_hash}\n".encode()
    for key, entry in staged.runs.items():
        data = zf.read(entry, limit=_RECORD_BYTES)
        try:
            dataflow_record.decode(data, limit=_RECORD_DECODED)
        except DecodeError as exc:
            raise InvalidPackage(f"{zf.label}: dataflow record {key} does not decode") from exc
        ws = key.split("/")[0]
        try:
            check_workspace_name(ws)
        except InvalidName as exc:
            raise InvalidPackage(f"{zf.label}: {exc.message}") from exc
        files[f"dataflows/{key}"] = data
    return files


def _head_reader(zf: SafeZip, staged: _Staged) -> ObjectLookup:
    """Object bytes for validation: kept heads, else read again from the archive, else the repo."""

    def get(h: str) -> bytes | None:
        entry = staged.objects.get(h)
        if entry is None:
            return None
        head = bytearray()
        for chunk in zf.chunks(entry):
            head += chunk[: _HEADER_PREFIX_BYTES - len(head)]
            if len(head) >= _HEADER_PREFIX_BYTES:
                break
        return bytes(head)

    return ObjectLookup(staged.heads, get)


def _read_package(
    repo: RepoStore, zf: SafeZip, staged: _Staged, pkg_hash: str
) -> tuple[PackageObject, ObjectLookup]:
    """The package object the archive's ref names (from the archive or the repository)."""
    label = zf.label
    from_zip = _head_reader(zf, staged)

    def lookup_get(h: str) -> bytes | None:
        data = from_zip.get(h)
        if data is not None:
            return data
        try:
            return repo.objects.get(h)
        except E3Error:
            return None

    lookup = ObjectLookup({}, lookup_get)
    pkg_bytes = lookup.get(pkg_hash)
    if pkg_bytes is None:
        raise InvalidPackage(f"{label}: package object {pkg_hash[:12]}… is missing")
    entry = staged.objects.get(pkg_hash)
    if entry is not None and entry.info.file_size > len(pkg_bytes):
        pkg_bytes = zf.read(entry, limit=_RECORD_DECODED)
    try:
        pkg = package_record.decode(pkg_bytes, limit=_RECORD_DECODED)
    except (DecodeError, TypeMismatch) as exc:
        raise InvalidPackage(f"{label}: package object does not decode ({exc.message})") from exc
    return pkg, lookup


def import_package(
    repo: RepoStore, zip_path: Path, *, force: bool = False, limits: ZipLimits | None = None
) -> ImportResult:
    """Import a package zip (validated in full before anything is written).

    Re-importing the same ``name@version`` with the same content is a no-op;
    with different content it is refused unless ``force`` replaces it.
    ``limits`` caps what the archive may decompress to (default
    :data:`e3.store.zipfmt.DEFAULT_LIMITS`).

    Raises:
        InvalidPackage: the zip is corrupt, unsafe or not a valid package.
        ValueTooLarge: it decompresses to more than ``limits`` allow.
        PackageExists: name@version exists with different content.
    """
    from e3.store.zipfmt import DEFAULT_LIMITS, SafeZip

    label = str(zip_path)
    with SafeZip(Path(zip_path), label, limits or DEFAULT_LIMITS) as zf:
        staged = _scan_zip(zf)
        if not staged.package_refs:
            raise InvalidPackage(
                f"{label}: no packages/<name>/<version> entry (missing package ref)"
            )
        if len(staged.package_refs) > 1:
            names = ", ".join(f"{n}@{v}" for n, v in sorted(staged.package_refs))
            raise InvalidPackage(f"{label}: more than one package in the archive ({names})")
        (name, version), pkg_hash = next(iter(staged.package_refs.items()))
        pkg, lookup = _read_package(repo, zf, staged, pkg_hash)
        reachable = validate_package(pkg, lookup.get, label)
        reachable.add(ObjectHash(pkg_hash))
        history = _validate_history(zf, staged)
        from e3.records import execution

        for key in staged.executions:
            raw = history[f"executions/{key}/status.beast2"]
            assert isinstance(raw, bytes)
            status = execution.decode(raw, limit=_RECORD_DECODED)
            if status.output_hash:
                reachable.add(ObjectHash(status.output_hash))

        existing = atomic.read_bytes(repo.package_ref_path(name, version))
        replaced = False
        if existing is not None:
            if existing.decode("utf-8", "replace").strip() == pkg_hash and not history:
                return ImportResult(name, version, pkg_hash, len(reachable), 0)
            if existing.decode("utf-8", "replace").strip() != pkg_hash:
                if not force:
                    raise PackageExists(
                        f"package {name}@{version} already exists with different content "
                        "(use --force to replace it)",
                        packageName=name,
                        version=version,
                    )
                replaced = True
        added = _write(repo, zf, staged, reachable, history)
        _commit_ref(repo, name, version, pkg_hash, existing, replaced, added)
    return ImportResult(name, version, pkg_hash, len(reachable), len(added[0]), replaced)


def _write(
    repo: RepoStore,
    zf: SafeZip,
    staged: _Staged,
    reachable: set[ObjectHash],
    history: dict[str, _HistoryFile],
) -> tuple[list[str], list[Path]]:
    """Pass 2: stream the new objects and history files into the repository.

    Returns what was added (objects, files), for :func:`_commit_ref` to undo
    on failure; on a failure here, what was added so far is removed first.
    """
    added_objects: list[str] = []
    added_files: list[Path] = []
    try:
        for h in sorted(reachable):
            # A present object is re-hashed: an import cut short by a power cut can
            # leave torn ones (objects are renamed into place before the one sync
            # below), and skipping them would commit a package that names them.
            present = repo.objects.has(h)
            if present and repo.objects.is_intact(h):
                continue
            entry = staged.objects.get(h)
            if entry is None:
                continue  # validated as present in the repository
            try:
                repo.objects.put_stream(zf.chunks(entry), h, sync=False)  # replaces a torn copy
            except CorruptObject as exc:  # the file changed under us
                raise InvalidPackage(f"{zf.label}: object {h[:12]}… changed during import") from exc
            if not present:
                added_objects.append(h)
        for rel, content in sorted(history.items()):
            target = repo.root / rel
            if target.exists():
                continue
            if isinstance(content, bytes):
                atomic.write_bytes(target, content, durable=repo.durable)
            else:
                _stream_file(zf, content, target, durable=repo.durable)
            added_files.append(target)
        if repo.durable:  # every object is on disk before the ref that commits them
            atomic.sync_filesystem(repo.root)
    except BaseException:
        _undo(repo, (added_objects, added_files))
        raise
    return added_objects, added_files


def _stream_file(zf: SafeZip, entry: ZipEntry, target: Path, *, durable: bool) -> None:
    """Write a (possibly large) entry to ``target`` chunk by chunk, atomically."""
    import contextlib
    import os

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.staging_name(target)
    try:
        with open(tmp, "xb") as f:
            for chunk in zf.chunks(entry):
                f.write(chunk)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.rename(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise atomic.storage_error(exc, "write", target) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _undo(repo: RepoStore, added: tuple[list[str], list[Path]]) -> None:
    for h in added[0]:
        repo.objects.delete(h)
    for p in added[1]:
        atomic.remove_file(p, durable=False)
        atomic.prune_empty_dirs(p.parent, repo.root)


def _commit_ref(
    repo: RepoStore,
    name: str,
    version: str,
    pkg_hash: str,
    existing: bytes | None,
    replaced: bool,
    added: tuple[list[str], list[Path]],
) -> None:
    """Write the package ref (the commit point); undo pass 2 if that fails."""
    try:
        ref_path = repo.package_ref_path(name, version)
        ref_data = (pkg_hash + "\n").encode()
        if existing is None:
            if not atomic.create_exclusive(ref_path, ref_data, durable=repo.durable):
                raise PackageExists(
                    f"package {name}@{version} was imported concurrently",
                    packageName=name,
                    version=version,
                )
        elif replaced:
            atomic.write_bytes(ref_path, ref_data, durable=repo.durable)
    except BaseException:
        _undo(repo, added)
        raise
