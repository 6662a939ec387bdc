"""Packages: import and export as zips, list, resolve, remove.

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
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from e3.base.names import (
    ObjectHash,
    check_field_name,
    check_hash,
    check_package_name,
    check_task_name,
    check_version,
    check_workspace_name,
    is_execution_id,
    is_hash,
    parse_package_spec,
)
from e3.base.paths import DatasetPath, format_keypath, ref_relpath
from e3.base.versions import version_key
from e3.codec import beast2
from e3.codec.types import IRType, print_type, same_type
from e3.errors import (
    DecodeError,
    E3Error,
    InvalidName,
    InvalidPackage,
    PackageExists,
    PackageNotFound,
    TypeMismatch,
)
from e3.model.results import ExportResult, ImportResult, PackageInfo
from e3.records import dataset_ref, structure
from e3.records import package as package_record
from e3.records import task as task_record
from e3.records.package import PackageObject
from e3.records.structure import StructNode
from e3.store import atomic
from e3.store.objects import ObjectStore
from e3.store.repository import RepoStore

if TYPE_CHECKING:  # zipfile is imported only by commands that read or write zips
    from e3.store.zipfmt import SafeZip, ZipEntry

_OBJECT_PREFIX = "objects/"
_HEADER_PREFIX_BYTES = 1 << 20


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


def read_package_object(repo: RepoStore, hash_: str) -> PackageObject:
    """Decode a package object from the store."""
    try:
        return package_record.decode(repo.objects.get(hash_))
    except DecodeError as exc:
        raise InvalidPackage(
            f"package object {hash_[:12]}… does not decode: {exc.message}"
        ) from exc


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


# ── validation ──────────────────────────────────────────────────────────────


@dataclass
class _Lookup:
    """Object bytes by hash during validation: staged (zip) objects first, then the repository."""

    staged: dict[str, bytes]
    repo_get: Callable[[str], bytes | None]

    def get(self, h: str) -> bytes | None:
        data = self.staged.get(h)
        if data is not None:
            return data
        return self.repo_get(h)


def _structure_paths(node: structure.Node, where: str, prefix: DatasetPath = ()) -> None:
    if isinstance(node, StructNode):
        for name, child in node.children.items():
            try:
                check_field_name(name)
            except InvalidName as exc:
                raise InvalidPackage(f"{where}: {exc.message}") from exc
            _structure_paths(child, where, (*prefix, name))
    elif not prefix:
        raise InvalidPackage(f"{where}: the root of the dataset tree must be a struct")


def validate_package(
    pkg: PackageObject, lookup: Callable[[str], bytes | None], where: str
) -> set[ObjectHash]:
    """Check a package's integrity; returns every object hash it references.

    Checks: the dataset tree's names; refs only for existing leaf datasets;
    every value object present and of its dataset's declared type; every task
    object present and decodable, with a present command IR, inputs and output
    that are leaf datasets, a non-writable output written by one task only;
    no cycles between tasks.

    Raises:
        InvalidPackage: with a message naming the task, dataset or object at fault.
    """
    _structure_paths(pkg.structure, where)
    leaves = dict(structure.leaves(pkg.structure))
    reachable: set[ObjectHash] = set()

    for path, ref in pkg.refs.items():
        spec = leaves.get(path)
        if spec is None:
            raise InvalidPackage(
                f"{where}: initial value for {format_keypath(path)}, "
                "which is not a dataset of the package"
            )
        if ref.kind == "value":
            h = ref.hash or ""
            if not is_hash(h):
                raise InvalidPackage(f"{where}: dataset {format_keypath(path)} has a bad hash")
            data = lookup(h)
            if data is None:
                raise InvalidPackage(
                    f"{where}: value of {format_keypath(path)} (object {h[:12]}…) is missing"
                )
            try:
                found = beast2.read_type(data)
            except DecodeError as exc:
                raise InvalidPackage(
                    f"{where}: value of {format_keypath(path)} is not valid Beast2 ({exc.message})"
                ) from exc
            if not same_type(found, spec.type):
                raise InvalidPackage(
                    f"{where}: value of {format_keypath(path)} has type {print_type(found)}, "
                    f"but the dataset is declared {print_type(spec.type)}"
                )
            reachable.add(ObjectHash(h))

    outputs: dict[DatasetPath, str] = {}
    deps: dict[str, list[DatasetPath]] = {}
    for name, h in sorted(pkg.tasks.items()):
        try:
            check_task_name(name)
        except InvalidName as exc:
            raise InvalidPackage(f"{where}: {exc.message}") from exc
        if not is_hash(h):
            raise InvalidPackage(f"{where}: task {name!r} has a bad hash")
        data = lookup(h)
        if data is None:
            raise InvalidPackage(f"{where}: task {name!r} (object {h[:12]}…) is missing")
        try:
            task = task_record.decode(data)
        except DecodeError as exc:
            raise InvalidPackage(f"{where}: task {name!r} does not decode ({exc.message})") from exc
        reachable.add(ObjectHash(h))
        ir = task.command_ir
        if not is_hash(ir) or (ir_bytes := lookup(ir)) is None:
            raise InvalidPackage(
                f"{where}: command of task {name!r} (object {ir[:12]}…) is missing"
            )
        try:
            if not same_type(beast2.read_type(ir_bytes), IRType):
                raise InvalidPackage(f"{where}: command of task {name!r} is not East IR")
        except DecodeError as exc:
            raise InvalidPackage(f"{where}: command of task {name!r} does not decode") from exc
        reachable.add(ObjectHash(ir))
        for i, p in enumerate(task.inputs):
            if p not in leaves:
                raise InvalidPackage(
                    f"{where}: input {i} of task {name!r} is "
                    f"{format_keypath(p)}, which is not a dataset"
                )
        out_spec = leaves.get(task.output)
        if out_spec is None:
            raise InvalidPackage(
                f"{where}: output of task {name!r} is "
                f"{format_keypath(task.output)}, which is not a dataset"
            )
        if out_spec.writable:
            raise InvalidPackage(
                f"{where}: output {format_keypath(task.output)} of task "
                f"{name!r} is writable; task outputs must not be"
            )
        other = outputs.get(task.output)
        if other is not None:
            raise InvalidPackage(
                f"{where}: tasks {other!r} and {name!r} both write {format_keypath(task.output)}"
            )
        outputs[task.output] = name
        deps[name] = list(task.inputs)

    cycle = _find_cycle(deps, outputs)
    if cycle:
        raise InvalidPackage(f"{where}: tasks form a cycle: {' -> '.join(cycle)}")
    return reachable


def _find_cycle(deps: dict[str, list[DatasetPath]], outputs: dict[DatasetPath, str]) -> list[str]:
    """A cycle of task names (closed, first == last), or ``[]``."""
    edges = {t: sorted({outputs[p] for p in ins if p in outputs}) for t, ins in deps.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(t: str) -> list[str]:
        state[t] = 1
        stack.append(t)
        for u in edges[t]:
            if state.get(u) == 1:
                return [*stack[stack.index(u) :], u]
            if state.get(u) is None:
                found = visit(u)
                if found:
                    return found
        stack.pop()
        state[t] = 2
        return []

    for t in sorted(edges):
        if state.get(t) is None:
            found = visit(t)
            if found:
                return found
    return []


def package_closure(repo: RepoStore, pkg_hash: str) -> tuple[PackageObject, set[ObjectHash]]:
    """A package object and every object it references (itself included).

    Every referenced object must exist (else :class:`InvalidPackage` names the
    missing one). Types are not re-checked: :func:`validate_package` did that when
    the package was imported, and objects never change. (Comparing East types is
    slow, a millisecond per function, so garbage collection, verification and
    exports of big packages would otherwise pay it again and again.)
    """
    pkg = read_package_object(repo, pkg_hash)
    where = f"package {pkg_hash[:12]}…"
    reachable: set[ObjectHash] = {check_hash(pkg_hash)}
    for path, ref in pkg.refs.items():
        if ref.kind != "value":
            continue
        h = ref.hash or ""
        if not is_hash(h) or not repo.objects.has(h):
            raise InvalidPackage(
                f"{where}: value of {format_keypath(path)} (object {h[:12]}…) is missing"
            )
        reachable.add(ObjectHash(h))
    for name, h in sorted(pkg.tasks.items()):
        try:
            task = task_record.decode(repo.objects.get(h))
        except E3Error as exc:
            raise InvalidPackage(
                f"{where}: task {name!r} (object {h[:12]}…): {exc.message}"
            ) from exc
        reachable.add(ObjectHash(h))
        ir = task.command_ir
        if not is_hash(ir) or not repo.objects.has(ir):
            raise InvalidPackage(
                f"{where}: command of task {name!r} (object {ir[:12]}…) is missing"
            )
        reachable.add(ObjectHash(ir))
    return pkg, reachable


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
        entries[f"objects/{h[:2]}/{h[2:]}.beast2"] = objects.get(h)
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
        if not staged.package_refs:
            raise InvalidPackage(
                f"{label}: no packages/<name>/<version> entry (missing package ref)"
            )
        if len(staged.package_refs) > 1:
            names = ", ".join(f"{n}@{v}" for n, v in sorted(staged.package_refs))
            raise InvalidPackage(f"{label}: more than one package in the archive ({names})")
        (name, version), pkg_hash = next(iter(staged.package_refs.items()))

        def repo_get(h: str) -> bytes | None:
            try:
                return repo.objects.get(h)
            except E3Error:
                return None

        lookup = _Lookup(staged.heads, repo_get)
        pkg_bytes = lookup.get(pkg_hash)
        if pkg_bytes is None:
            raise InvalidPackage(f"{label}: package object {pkg_hash[:12]}… is missing")
        if pkg_hash in staged.objects and staged.objects[pkg_hash].info.file_size > len(pkg_bytes):
            pkg_bytes = zf.read(staged.objects[pkg_hash], limit=1 << 30)
        try:
            pkg = package_record.decode(pkg_bytes)
        except (DecodeError, TypeMismatch) as exc:
            raise InvalidPackage(
                f"{label}: package object does not decode ({exc.message})"
            ) from exc
        reachable = validate_package(pkg, lookup.get, label)
        reachable.add(ObjectHash(pkg_hash))
        history = _validate_history(zf, staged)
        from e3.records import execution

        for key in staged.executions:
            status = execution.decode(history[f"executions/{key}/status.beast2"])
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

        # Pass 2: write. Track what we add so a failure can be undone.
        added_objects: list[str] = []
        added_files: list[Path] = []
        try:
            for h in sorted(reachable):
                if repo.objects.has(h):
                    continue
                entry = staged.objects.get(h)
                if entry is None:
                    continue  # validated as present in the repository
                data = zf.read(entry, limit=1 << 40)
                if hashlib.sha256(data).hexdigest() != h:  # the file changed under us
                    raise InvalidPackage(f"{label}: object {h[:12]}… changed during import")
                repo.objects.put(data, sync=False)
                added_objects.append(h)
            for rel, data in sorted(history.items()):
                target = repo.root / rel
                if target.exists():
                    continue
                atomic.write_bytes(target, data, durable=repo.durable)
                added_files.append(target)
            if repo.durable:  # every object is on disk before the ref that commits them
                atomic.sync_filesystem(repo.root)
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
            for added in added_objects:
                repo.objects.delete(added)
            for p in added_files:
                atomic.remove_file(p, durable=False)
                atomic.prune_empty_dirs(p.parent, repo.root)
            raise
    return ImportResult(name, version, pkg_hash, len(reachable), len(added_objects), replaced)
