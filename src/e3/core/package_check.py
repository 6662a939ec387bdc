"""Whether a package object is whole: every name valid, every object present and well typed.

Import validates a package before writing anything (:func:`validate_package`);
garbage collection, verification and export only need the objects a stored
package references (:func:`package_closure`), without re-checking types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from e3.base.graphs import toposort
from e3.base.names import (
    ObjectHash,
    check_field_name,
    check_hash,
    check_task_name,
    is_hash,
)
from e3.base.paths import DatasetPath, format_keypath
from e3.codec import beast2
from e3.codec.types import EastType, IRType, identical, same_type, short_type
from e3.errors import (
    DecodeError,
    E3Error,
    InvalidName,
    InvalidPackage,
)
from e3.records import structure
from e3.records import task as task_record
from e3.records.package import PackageObject
from e3.records.structure import DatasetSpec, StructNode
from e3.store.repository import RepoStore

if TYPE_CHECKING:  # zipfile is imported only by commands that read or write zips
    pass


from e3.core.packages import read_package_object

#: Most bytes a task object being imported may decode to (they are a few hundred).
TASK_DECODED = 16 << 20

# ── validation ──────────────────────────────────────────────────────────────


@dataclass
class ObjectLookup:
    """Object bytes by hash during validation: staged (zip) objects first, then the repository."""

    staged: dict[str, bytes]
    repo_get: Callable[[str], bytes | None]

    def get(self, h: str) -> bytes | None:
        """The object's bytes (a staged head for large zip objects), or ``None``."""
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


class _HeaderTypes:
    """Whether values are of their declared types, each distinct (header, type) pair read once.

    Every function IR of a package (one per task) and every task's command share
    one Beast2 header, and comparing a recursive type such as IRType walks it
    (about 10 ms): a package of 10,000 distinct functions took minutes to import
    when each value's type was read and compared anew. A decoded package gives
    each dataset a type object of its own, so declared types are first mapped to
    a representative equal to them by east-py's ``==`` (microseconds between two
    types decoded from one package, where the structural walk takes
    milliseconds); verdicts are kept per (header, representative).
    """

    #: Representatives kept per kind of type: a package of many distinct types
    #: compares each with at most this many before keeping it as its own.
    REPRESENTATIVES = 8

    def __init__(self) -> None:
        #: Accepted pairs; the value keeps the declared type alive, so its id stays its own.
        self._accepted: dict[tuple[bytes, int], EastType] = {}
        #: The type each distinct header records, read once (and its structure walked once).
        self._found: dict[bytes, EastType] = {}
        #: Representatives of the declared types met, by kind.
        self._kinds: dict[str, list[EastType]] = {}
        #: A declared type's representative, by the declared type's id (the pair keeps it alive).
        self._same_as: dict[int, tuple[EastType, EastType]] = {}

    def representative(self, declared: EastType) -> EastType:
        """The first declared type met that is equal (east-py's ``==``) to ``declared``."""
        known = self._same_as.get(id(declared))
        if known is not None:
            return known[1]
        kind = str(declared.type)
        reps = self._kinds.setdefault(kind, [])
        chosen = next((rep for rep in reps if identical(rep, declared)), None)
        if chosen is None:
            chosen = declared
            if len(reps) < self.REPRESENTATIVES:
                reps.append(declared)
        self._same_as[id(declared)] = (declared, chosen)
        return chosen

    def mismatch(self, data: bytes, declared: EastType) -> EastType | None:
        """The type recorded in ``data`` if it is not ``declared`` (``None``: it is).

        Raises:
            DecodeError: the header does not parse.
        """
        header = beast2.header_bytes(data)
        declared = self.representative(declared)
        key = (header, id(declared))
        if key in self._accepted:
            return None
        found = self._found.get(header)
        if found is None:
            found = self._found[header] = beast2.read_type(data)
        if not same_type(found, declared):
            return found
        self._accepted[key] = declared
        return None


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
    types = _HeaderTypes()
    reachable = _check_values(pkg, leaves, lookup, where, types)
    outputs: dict[DatasetPath, str] = {}
    deps: dict[str, list[DatasetPath]] = {}
    for name, h in sorted(pkg.tasks.items()):
        task = _check_task(name, h, leaves, lookup, where, reachable, types)
        other = outputs.get(task.output)
        if other is not None:
            raise InvalidPackage(
                f"{where}: tasks {other!r} and {name!r} both write {format_keypath(task.output)}"
            )
        outputs[task.output] = name
        deps[name] = list(task.inputs)
    edges = {t: sorted({outputs[p] for p in ins if p in outputs}) for t, ins in deps.items()}
    _, cycle = toposort(sorted(edges), edges)
    if cycle:
        raise InvalidPackage(f"{where}: tasks form a cycle: {' -> '.join(cycle)}")
    return reachable


def _check_values(
    pkg: PackageObject,
    leaves: dict[DatasetPath, DatasetSpec],
    lookup: Callable[[str], bytes | None],
    where: str,
    types: _HeaderTypes,
) -> set[ObjectHash]:
    """Initial values: for datasets of the package, present, of their declared types."""
    reachable: set[ObjectHash] = set()
    for path, ref in pkg.refs.items():
        spec = leaves.get(path)
        if spec is None:
            raise InvalidPackage(
                f"{where}: initial value for {format_keypath(path)}, "
                "which is not a dataset of the package"
            )
        if ref.kind != "value":
            continue
        h = ref.hash or ""
        if not is_hash(h):
            raise InvalidPackage(f"{where}: dataset {format_keypath(path)} has a bad hash")
        data = lookup(h)
        if data is None:
            raise InvalidPackage(
                f"{where}: value of {format_keypath(path)} (object {h[:12]}…) is missing"
            )
        try:
            found = types.mismatch(data, spec.type)
        except DecodeError as exc:
            raise InvalidPackage(
                f"{where}: value of {format_keypath(path)} is not valid Beast2 ({exc.message})"
            ) from exc
        if found is not None:
            raise InvalidPackage(
                f"{where}: value of {format_keypath(path)} has type {short_type(found)}, "
                f"but the dataset is declared {short_type(spec.type)}"
            )
        reachable.add(ObjectHash(h))
    return reachable


def _check_task(
    name: str,
    h: str,
    leaves: dict[DatasetPath, DatasetSpec],
    lookup: Callable[[str], bytes | None],
    where: str,
    reachable: set[ObjectHash],
    types: _HeaderTypes,
) -> task_record.TaskObject:
    """One task: a valid name, a decodable object, East IR, datasets for inputs and output."""
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
        task = task_record.decode(data, limit=TASK_DECODED)
    except DecodeError as exc:
        raise InvalidPackage(f"{where}: task {name!r} does not decode ({exc.message})") from exc
    reachable.add(ObjectHash(h))
    ir = task.command_ir
    if not is_hash(ir) or (ir_bytes := lookup(ir)) is None:
        raise InvalidPackage(f"{where}: command of task {name!r} (object {ir[:12]}…) is missing")
    try:
        if types.mismatch(ir_bytes, IRType) is not None:
            raise InvalidPackage(f"{where}: command of task {name!r} is not East IR")
    except DecodeError as exc:
        raise InvalidPackage(f"{where}: command of task {name!r} does not decode") from exc
    reachable.add(ObjectHash(ir))
    for i, p in enumerate(task.inputs):
        if p not in leaves:
            raise InvalidPackage(
                f"{where}: input {i} of task {name!r} is {format_keypath(p)}, "
                "which is not a dataset"
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
    return task


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
