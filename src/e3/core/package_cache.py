"""Decoded package objects, cached by hash in ``cache/packages/<hash>.json``.

Every command on a workspace needs its package: the dataset tree with each
dataset's type, the tasks, the initial refs. Decoding that from the package's
Beast2 object goes through east-py's value objects one dataset at a time, and
for a 10,000-task package it took longer (0.2-0.4 s) than the rest of a fully
cached ``e3 start``. Packages are immutable and named by their hash, so the
decoded form is kept once as JSON, with each distinct type stored once (most
datasets of a package share a handful of types).

The file is only a cache, never a source of truth: it carries the SHA-256 of
its body and is ignored when that does not match, when it does not parse, or
when it is missing (a power cut may leave it empty: it is written without an
fsync). Deleting ``cache/`` loses nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from e3.base import atomic
from e3.base.paths import DatasetPath
from e3.codec import beast2
from e3.codec.types import EastType, EastTypeType
from e3.errors import E3Error
from e3.records.dataset_ref import DatasetRef
from e3.records.package import PackageObject
from e3.records.structure import MAX_DEPTH, DatasetSpec, Node, StructNode
from e3.store.repository import RepoStore

#: Bumped whenever the JSON layout changes: files of another layout are ignored.
LAYOUT = 2


def cache_path(repo: RepoStore, package_hash: str) -> Path:
    """Where the decoded form of package ``package_hash`` is kept."""
    return repo.root / "cache" / "packages" / f"{package_hash}.json"


def read(repo: RepoStore, package_hash: str) -> PackageObject | None:
    """The cached decoded package, or ``None`` (absent, damaged or of another layout)."""
    raw = atomic.read_bytes(cache_path(repo, package_hash)) or b""
    digest, sep, body = raw.partition(b"\n")
    if not sep or hashlib.sha256(body).hexdigest().encode() != digest:
        return None
    try:
        return _from_json(json.loads(body))
    except (ValueError, TypeError, KeyError, IndexError, E3Error):
        return None


def write(repo: RepoStore, package_hash: str, pkg: PackageObject) -> None:
    """Keep ``pkg`` for the next command (best effort: a failure only costs the next decode)."""
    body = json.dumps(_to_json(pkg), separators=(",", ":")).encode()
    data = hashlib.sha256(body).hexdigest().encode() + b"\n" + body
    with contextlib.suppress(E3Error, OSError):
        atomic.write_bytes(cache_path(repo, package_hash), data, durable=False)


def _to_json(pkg: PackageObject) -> dict[str, Any]:
    types: dict[bytes, int] = {}
    specs: dict[tuple[int, bool], int] = {}

    def node(n: Node) -> Any:
        if isinstance(n, DatasetSpec):
            t = beast2.encode(n.type, EastTypeType)
            spec = (types.setdefault(t, len(types)), n.writable)
            return specs.setdefault(spec, len(specs))
        return {name: node(child) for name, child in n.children.items()}

    tree = node(pkg.structure)
    return {
        "layout": LAYOUT,
        "tasks": pkg.tasks,
        "types": [key.hex() for key in types],
        "specs": list(specs),
        "structure": tree,
        "refs": [[list(p), r.kind, r.hash, r.versions] for p, r in pkg.refs.items()],
    }


def _from_json(doc: dict[str, Any]) -> PackageObject | None:
    if doc.get("layout") != LAYOUT:
        return None
    types: list[EastType] = [
        beast2.decode(bytes.fromhex(t), EastTypeType, trusted=False) for t in doc["types"]
    ]
    # Datasets of one type and writability share one (immutable) spec.
    specs = [DatasetSpec(type=types[t], writable=bool(w)) for t, w in doc["specs"]]

    def node(value: Any, depth: int) -> Node:
        if type(value) is int:
            return specs[value]
        if depth >= MAX_DEPTH:
            raise ValueError("tree too deep")
        return StructNode({str(k): node(v, depth + 1) for k, v in value.items()})

    refs: dict[DatasetPath, DatasetRef] = {
        tuple(path): DatasetRef(kind, h, dict(versions)) for path, kind, h, versions in doc["refs"]
    }
    tasks = {str(k): str(v) for k, v in doc["tasks"].items()}
    return PackageObject(tasks=tasks, structure=node(doc["structure"], 0), refs=refs)
