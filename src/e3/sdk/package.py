"""Collecting definitions into a package, building its objects, exporting the zip.

``package()`` follows every task to its inputs and their producing tasks, so
listing the final tasks is enough. The result is validated with the same
checks ``e3 package import`` applies, and exported deterministically: the
same definition always gives a byte-identical zip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from e3.base.names import ObjectHash, check_package_name, check_version
from e3.base.paths import DatasetPath, format_keypath
from e3.core import package_check, package_zip
from e3.errors import InvalidName, InvalidPackage
from e3.model.results import ExportResult
from e3.records import package as package_record
from e3.records import task as task_record
from e3.records.dataset_ref import DatasetRef
from e3.records.package import PackageObject
from e3.records.structure import DatasetSpec, StructNode
from e3.sdk.definitions import Dataset, Item, Task
from e3.store.objects import MemoryObjectStore, ObjectStore
from e3.store.zipfmt import write_zip


@dataclass(frozen=True, eq=False)
class Package:
    """A package definition: name, version, and every dataset and task it holds."""

    name: str
    version: str
    datasets: tuple[Dataset, ...]
    tasks: tuple[Task, ...]

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def task(self, name: str) -> Task:
        """A task by name."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)


def _collect(items: tuple[Item, ...]) -> tuple[list[Dataset], list[Task]]:
    datasets: dict[int, Dataset] = {}
    tasks: dict[int, Task] = {}
    stack: list[Item] = list(items)
    while stack:
        item = stack.pop()
        if isinstance(item, Task):
            if id(item) in tasks:
                continue
            tasks[id(item)] = item
            for ds in item.datasets:
                datasets[id(ds)] = ds
            stack.extend(item.inputs)
        elif isinstance(item, Dataset):
            if id(item) in datasets:
                continue
            datasets[id(item)] = item
            if item.task is not None:
                stack.append(item.task)
        else:
            raise InvalidPackage(
                f"package items must be datasets or tasks, got {type(item).__name__}"
            )
    return list(datasets.values()), list(tasks.values())


def package(name: str, version: str, *items: Item) -> Package:
    """Define a package from its tasks and datasets (dependencies are added automatically).

    Raises:
        InvalidPackage: bad name or version, two tasks with one name, two
            different datasets at one path, a dataset nested under another, or a cycle.
    """
    try:
        check_package_name(name)
        check_version(version)
    except InvalidName as exc:
        raise InvalidPackage(exc.message) from exc
    datasets, tasks = _collect(items)
    by_name: dict[str, Task] = {}
    for t in sorted(tasks, key=lambda t: t.name):
        if t.name in by_name:
            raise InvalidPackage(f"package {name}: two different tasks are named {t.name!r}")
        by_name[t.name] = t
    by_path: dict[DatasetPath, Dataset] = {}
    for d in sorted(datasets, key=lambda d: d.path):
        other = by_path.get(d.path)
        if other is not None:
            raise InvalidPackage(
                f"package {name}: two different datasets at {d.keypath} (give them different names)"
            )
        by_path[d.path] = d
    for p in by_path:
        for i in range(1, len(p)):
            if p[:i] in by_path:
                raise InvalidPackage(
                    f"package {name}: dataset {format_keypath(p)} is nested "
                    f"under dataset {format_keypath(p[:i])}"
                )
    pkg = Package(
        name,
        version,
        tuple(by_path[p] for p in sorted(by_path)),
        tuple(by_name[n] for n in sorted(by_name)),
    )
    build(pkg, MemoryObjectStore())  # full validation, as on import
    return pkg


def _structure(datasets: tuple[Dataset, ...]) -> StructNode:
    root = StructNode({})
    for d in datasets:
        node = root
        for seg in d.path[:-1]:
            child = node.children.setdefault(seg, StructNode({}))
            assert isinstance(child, StructNode)
            node = child
        node.children[d.path[-1]] = DatasetSpec(d.type, d.writable)
    return root


def build(pkg: Package, store: ObjectStore) -> tuple[str, PackageObject, set[str]]:
    """Write a package's objects into ``store``; returns (hash, object, object hashes)."""
    refs: dict[DatasetPath, DatasetRef] = {}
    for d in pkg.datasets:
        if d.default is not None:
            refs[d.path] = DatasetRef.of(store.put(d.default))
    task_hashes: dict[str, str] = {}
    for t in pkg.tasks:
        command = store.put(t.command_ir)
        obj = task_record.TaskObject(command, tuple(d.path for d in t.inputs), t.output.path)
        task_hashes[t.name] = store.put(task_record.encode(obj))
    pobj = PackageObject(task_hashes, _structure(pkg.datasets), refs)
    pkg_hash = store.put(package_record.encode(pobj))

    def lookup(h: str) -> bytes | None:
        return store.get(h) if store.has(h) else None

    reachable = package_check.validate_package(pobj, lookup, f"package {pkg.ref}")
    reachable.add(ObjectHash(pkg_hash))
    return pkg_hash, pobj, set(reachable)


def export(pkg: Package, path: str | Path) -> ExportResult:
    """Write ``pkg`` as a deterministic package zip at ``path``."""
    store = MemoryObjectStore()
    pkg_hash, pobj, objs = build(pkg, store)
    entries = package_zip.package_zip_entries(
        store, pkg.name, pkg.version, pkg_hash, pobj, sorted(objs)
    )
    size = write_zip(Path(path), entries)
    return ExportResult(pkg.name, pkg.version, pkg_hash, len(objs), size)
