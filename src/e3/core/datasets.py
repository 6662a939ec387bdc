"""Datasets of a deployed workspace: resolve paths, get, set, list, status.

``set`` checks the value against the dataset's declared type (the reference
stored whatever type the caller gave) and stores it in canonical Beast2, so
the same value set from ``.east``, ``.json``, ``.csv`` or ``.beast2`` gets the
same hash. Task outputs and function IR are not writable.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from e3.base.paths import DatasetPath, format_keypath, format_workspace_path
from e3.codec import beast2
from e3.codec.types import EastType, EastValue, fits, print_type, same_type, short_type
from e3.core import workspaces
from e3.core.workspaces import Deployed
from e3.errors import (
    CorruptObject,
    DatasetNotFound,
    DatasetUnassigned,
    E3Error,
    InvalidPath,
    PermissionDenied,
    TypeMismatch,
)
from e3.model.listings import DatasetEntry
from e3.records.dataset_ref import DatasetRef
from e3.records.structure import DatasetSpec, Node, StructNode
from e3.store.repository import RepoStore


def resolve(dep: Deployed, path: DatasetPath) -> Node:
    """The structure node at ``path``.

    Raises:
        DatasetNotFound: with the fields available where the path went wrong.
    """
    node: Node = dep.package.structure
    for i, seg in enumerate(path):
        if not isinstance(node, StructNode):
            raise DatasetNotFound(
                f"{format_workspace_path(dep.name, path[:i])} is a dataset; "
                f"it has no field '{seg}'",
                workspace=dep.name,
                path=format_keypath(path),
            )
        child = node.children.get(seg)
        if child is None:
            available = ", ".join(sorted(node.children)) or "none"
            raise DatasetNotFound(
                f"no dataset '{seg}' in {format_workspace_path(dep.name, path[:i])} "
                f"(available: {available})",
                workspace=dep.name,
                path=format_keypath(path),
            )
        node = child
    return node


def resolve_dataset(dep: Deployed, path: DatasetPath) -> tuple[DatasetPath, DatasetSpec]:
    """The leaf dataset at ``path`` and its full path (trees are refused).

    A task subtree (``function_ir`` + ``output``) stands for its output, as
    ``e3 list`` shows it: ``ws.tasks.t`` means ``ws.tasks.t.output``.
    """
    if not path:
        raise InvalidPath(
            f"{dep.name}: the workspace root is a tree, not a dataset; "
            "name a dataset such as ws.inputs.x"
        )
    node = resolve(dep, path)
    if _is_task_node(node):
        assert isinstance(node, StructNode)
        path, node = (*path, "output"), node.children["output"]
    if not isinstance(node, DatasetSpec):
        raise InvalidPath(f"{format_workspace_path(dep.name, path)} is a tree, not a dataset")
    return path, node


def _size(repo: RepoStore, ref: DatasetRef) -> int | None:
    if ref.kind == "value" and ref.hash:
        try:
            return repo.objects.info(ref.hash).size
        except E3Error:  # a missing object shows as unknown size
            return None
    return 0 if ref.kind == "null" else None


def dataset_object(repo: RepoStore, ws: str, path: DatasetPath) -> tuple[EastType, str | None]:
    """Declared type and object hash of a dataset's value (``None`` if null).

    Raises:
        DatasetUnassigned: the dataset has no value yet.
    """
    with workspaces.locked(repo, ws, "shared", "dataset_write"):
        dep = workspaces.open_deployed(repo, ws)
        path, spec = resolve_dataset(dep, path)
        ref = workspaces.read_ref(dep, path)
    if ref.kind == "unassigned":
        raise DatasetUnassigned(
            f"dataset {format_workspace_path(ws, path)} is unassigned (no value yet"
            + (", pending task output)" if not spec.writable else ")"),
            workspace=ws,
            path=format_keypath(path),
        )
    if ref.kind == "null" or ref.hash is None:
        return spec.type, None
    return spec.type, ref.hash


def get_dataset(repo: RepoStore, ws: str, path: DatasetPath) -> tuple[EastType, bytes | None]:
    """Declared type and canonical Beast2 bytes of a dataset (``None`` if null).

    Raises:
        DatasetUnassigned: the dataset has no value yet.
        CorruptObject: its object no longer matches its hash.
    """
    east_type, h = dataset_object(repo, ws, path)
    if h is None:
        return east_type, None
    try:
        data = repo.objects.get(h, verify=True)
    except CorruptObject as exc:
        raise CorruptObject(
            f"dataset {format_workspace_path(ws, path)}: {exc.message}", hash=h
        ) from exc
    return east_type, data


def get_value(repo: RepoStore, ws: str, path: DatasetPath) -> tuple[EastType, EastValue | None]:
    """Declared type and decoded value of a dataset (``None`` if null)."""
    east_type, data = get_dataset(repo, ws, path)
    if data is None:
        return east_type, None
    return east_type, beast2.decode(data, east_type)


def check_writable(dep: Deployed, path: DatasetPath) -> DatasetSpec:
    """The dataset at ``path`` if users may set it.

    Raises:
        PermissionDenied: task outputs and function IR are written only by e3.
    """
    path, spec = resolve_dataset(dep, path)
    if not spec.writable:
        raise PermissionDenied(
            f"dataset {format_workspace_path(dep.name, path)} is not writable "
            "(it is computed by a task)",
            path=format_keypath(path),
        )
    return spec


def check_type(dep: Deployed, path: DatasetPath, spec: DatasetSpec, given: EastType) -> None:
    """Refuse a value whose type differs from the declared one, showing both."""
    if not same_type(given, spec.type):
        raise TypeMismatch(
            f"type mismatch for {format_workspace_path(dep.name, path)}: the dataset is "
            f"{short_type(spec.type)} but the value is {short_type(given)}",
            expected=print_type(spec.type),
            actual=print_type(given),
        )


def set_dataset_bytes(
    repo: RepoStore, ws: str, path: DatasetPath, data: bytes, *, limit: int | None = None
) -> str:
    """Set a dataset from Beast2 bytes (any byte form); returns the stored object hash.

    ``limit`` bounds the value's decoded size (bytes from a network client:
    see :func:`e3.codec.beast2.value_size`); nothing is written for a refusal.
    """
    with workspaces.locked(repo, ws, "shared", "dataset_write"):
        dep = workspaces.open_deployed(repo, ws)
        spec = check_writable(dep, path)
        found = beast2.read_type(data)
        if not fits(found, spec.type):
            check_type(dep, path, spec, found)
        _, canonical = beast2.canonicalize(data, spec.type, limit=limit)
        h = repo.objects.put(canonical)
        workspaces.write_input_ref(repo, dep, path, DatasetRef.of(h))
        return h


def set_dataset_value(
    repo: RepoStore,
    ws: str,
    path: DatasetPath,
    value: EastValue,
    value_type: EastType | None = None,
) -> str:
    """Set a dataset from an East value (of ``value_type``, default the declared type)."""
    with workspaces.locked(repo, ws, "shared", "dataset_write"):
        dep = workspaces.open_deployed(repo, ws)
        spec = check_writable(dep, path)
        if value_type is not None:
            check_type(dep, path, spec, value_type)
        data = beast2.encode(value, spec.type)
        h = repo.objects.put(data)
        workspaces.write_input_ref(repo, dep, path, DatasetRef.of(h))
        return h


def _is_task_node(node: Node) -> bool:
    """A task's subtree: ``output`` (custom tasks) or ``function_ir`` + ``output`` (East tasks)."""
    return (
        isinstance(node, StructNode)
        and isinstance(node.children.get("output"), DatasetSpec)
        and set(node.children) <= {"function_ir", "output"}
    )


def _entry(
    repo: RepoStore, dep: Deployed, path: DatasetPath, node: Node, with_status: bool
) -> DatasetEntry:
    if isinstance(node, DatasetSpec):
        if not with_status:
            return DatasetEntry(path, "dataset", node.type, node.writable)
        return _dataset_entry(repo, path, node, workspaces.read_ref(dep, path))
    if _is_task_node(node):
        assert isinstance(node, StructNode)
        return _entry(repo, dep, (*path, "output"), node.children["output"], with_status)
    return DatasetEntry(path, "tree")


def list_datasets(
    repo: RepoStore,
    ws: str,
    path: DatasetPath = (),
    *,
    recursive: bool = False,
    with_status: bool = False,
) -> list[DatasetEntry]:
    """Children of ``path`` (or, with ``recursive``, every dataset below it).

    An ``e3.task`` subtree (``function_ir`` + ``output``) is shown as one
    dataset: its output.
    """
    with workspaces.locked(repo, ws, "shared", "dataset_write"):
        dep = workspaces.open_deployed(repo, ws)
        node = resolve(dep, path)
        if not isinstance(node, StructNode):
            return [_entry(repo, dep, path, node, with_status)]
        out: list[DatasetEntry] = []

        def walk(n: StructNode, prefix: DatasetPath) -> None:
            for name in sorted(n.children):
                child = n.children[name]
                p = (*prefix, name)
                if isinstance(child, StructNode) and not _is_task_node(child):
                    if with_status or not recursive:
                        out.append(DatasetEntry(p, "tree"))
                    if recursive:
                        walk(child, p)
                else:
                    entry = _entry(repo, dep, p, child, with_status)
                    out.append(replace(entry, path=p))

        walk(node, path)
        return out


def dataset_status(repo: RepoStore, ws: str, path: DatasetPath) -> DatasetEntry:
    """Type, ref and size of one dataset."""
    with workspaces.locked(repo, ws, "shared", "dataset_write"):
        dep = workspaces.open_deployed(repo, ws)
        path, spec = resolve_dataset(dep, path)
        return _dataset_entry(repo, path, spec, workspaces.read_ref(dep, path))


_STATUS: dict[str, Literal["set", "unset", "null"]] = {
    "value": "set",
    "unassigned": "unset",
    "null": "null",
}


def _dataset_entry(
    repo: RepoStore, path: DatasetPath, spec: DatasetSpec, ref: DatasetRef
) -> DatasetEntry:
    return DatasetEntry(
        path, "dataset", spec.type, spec.writable, _STATUS[ref.kind], ref.hash, _size(repo, ref)
    )
