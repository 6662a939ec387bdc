"""Decompression bombs and other inputs that are small on the wire and huge inside.

Shared by ``python -m fuzz hostile`` (the ``bombs`` target) and the hostile-load
tests: Beast2 values whose deflate frames inflate a thousandfold, package zips
whose entries do, and package objects nested deeper than any walk of them should
go. Every builder is deterministic and streams what it compresses, so making a
bomb of a gibibyte costs no more memory than its compressed size.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from collections.abc import Sequence
from typing import Any

MiB = 1 << 20


def leb128(n: int) -> bytes:
    """An unsigned LEB128 varint (Beast2's lengths and counts)."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _header(east_type: Any, sample: Any) -> bytes:
    """The Beast2 v5 header (magic, type section, source map) of ``east_type``."""
    from east.serialization.beast2 import encode_beast2_v5_for

    from e3.codec import beast2

    plain = encode_beast2_v5_for(east_type, codec="none")(sample)
    return bytes(plain[: beast2.header_size(plain)])


def beast2_bomb(
    east_type: Any, sample: Any, head: bytes, fill: int, byte: bytes, declared: int | None = None
) -> bytes:
    """Beast2 v5 of ``east_type`` whose value stream is ``head`` then ``fill`` bytes ``byte``,
    in one raw-deflate frame: about ``fill / 1000`` bytes that east-c would decode into a
    value of ``fill`` bytes (``sample``: any value of the type, for the header).

    For a String or Blob (or a Struct holding just one), ``head`` is ``leb128(fill)``.
    ``declared``: the size the frame claims, if not the true one (a forged frame).
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [deflate.compress(head)]
    block = byte * MiB
    left = fill
    while left:
        n = min(left, len(block))
        parts.append(deflate.compress(block[:n]))
        left -= n
    parts.append(deflate.flush())
    payload = b"".join(parts)
    header = _header(east_type, sample)
    size = len(head) + fill if declared is None else declared
    return header + leb128(1) + leb128(size) + leb128(len(payload)) + payload


def blob_bomb(size: int) -> bytes:
    """A Blob of ``size`` zero bytes in about ``size / 1000`` bytes."""
    from e3.codec.types import BlobType

    return beast2_bomb(BlobType, b"", leb128(size), size, b"\0")


def forged_bomb(size: int) -> bytes:
    """A Blob bomb whose frame claims a tenth of what it inflates to."""
    from e3.codec.types import BlobType

    return beast2_bomb(BlobType, b"", leb128(size), size, b"\0", declared=size // 10)


def string_bomb(size: int) -> bytes:
    """A String of ``size`` letters in about ``size / 1000`` bytes."""
    from e3.codec.types import StringType

    return beast2_bomb(StringType, "", leb128(size), size, b"a")


def name_body_bomb(size: int) -> bytes:
    """A ``WorkspaceRequest`` body (``Struct {name: String}``) naming a ``size``-byte name."""
    from e3.model import wire
    from e3.model.bodies import WorkspaceRequest

    t = wire.east_type_of(WorkspaceRequest)
    return beast2_bomb(t, {"name": ""}, leb128(size), size, b"a")


def big_string_object(size: int) -> bytes:
    """An uncompressed Beast2 String of ``size`` letters: a valid object ``size`` bytes long."""
    from e3.codec.types import StringType

    stream = leb128(size) + b"a" * size
    return _header(StringType, "") + leb128(0) + leb128(len(stream)) * 2 + stream


# ── package zips ───────────────────────────────────────────────────────────


def base_package_zip() -> bytes:
    """A small valid package ``bombs@1.0.0``: String ``s`` (default "a"), Blob ``b``, Integer ``n``,
    and a task ``t`` copying ``n``."""
    import tempfile
    from pathlib import Path

    from east import BlobType, IntegerType, StringType

    import e3
    from e3.sdk import export

    s = e3.input("s", StringType, default="a")
    b = e3.input("b", BlobType, default=b"")
    n = e3.input("n", IntegerType, default=1)
    t = e3.custom_task("t", [n], IntegerType, "cp {inputs[0]} {output}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bombs.zip"
        export(e3.package("bombs", "1.0.0", t, s, b), out)
        return out.read_bytes()


def _entries(zip_bytes: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _package(entries: dict[str, bytes]) -> tuple[str, str, Any]:
    """(ref entry name, package hash, decoded package object) of a package zip's entries."""
    from e3.records import package as package_record

    (ref,) = [k for k in entries if k.startswith("packages/")]
    h = entries[ref].decode().strip()
    return ref, h, package_record.decode(entries[_object_name(h)])


def _object_name(h: str) -> str:
    return f"objects/{h[:2]}/{h[2:]}.beast2"


def _zip(entries: dict[str, bytes], extra: Sequence[tuple[str, int, bytes]] = ()) -> bytes:
    """A zip of ``entries``, then ``extra`` entries of ``count`` repetitions of a block each."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name])
        for name, count, block in extra:
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=count * len(block) >= 1 << 31) as f:
                for _ in range(count):
                    f.write(block)
    return buf.getvalue()


def _with_package(entries: dict[str, bytes], pkg_value: Any) -> dict[str, bytes]:
    """``entries`` with the package object replaced (and its ref pointing at it)."""
    from e3.codec import beast2
    from e3.records import package as package_record

    ref, old, _ = _package(entries)
    data = beast2.encode(pkg_value, package_record.PackageObjectType)
    h = hashlib.sha256(data).hexdigest()
    out = {k: v for k, v in entries.items() if k != _object_name(old)}
    out[_object_name(h)] = data
    out[ref] = (h + "\n").encode()
    return out


def zip_with_big_default(base: bytes, size: int) -> bytes:
    """The package zip ``base`` with input ``s``'s default replaced by a ``size``-byte String
    object (a ~``size / 1000`` byte entry)."""
    from e3.records import package as package_record
    from e3.records.dataset_ref import DatasetRef

    entries = _entries(base)
    _, _, pkg = _package(entries)
    obj = big_string_object(size)
    h = hashlib.sha256(obj).hexdigest()
    refs = dict(pkg.refs)
    refs[("inputs", "s")] = DatasetRef.of(h)
    value = package_record.to_east(package_record.PackageObject(pkg.tasks, pkg.structure, refs))
    out = _with_package(entries, value)
    out[_object_name(h)] = obj
    return _zip(out)


def zip_with_junk_entries(base: bytes, count: int, size: int) -> bytes:
    """The package zip ``base`` plus ``count`` ``data/`` entries of ``size`` zero bytes each
    (entries an importer reads but does not need)."""
    block = b"\0" * MiB
    extra = [(f"data/junk{i}.ref", size // MiB, block) for i in range(count)]
    return _zip(_entries(base), extra)


def zip_with_deep_structure(base: bytes, depth: int) -> bytes:
    """The package zip ``base`` whose dataset tree also holds a branch ``depth`` levels deep."""
    from e3.codec.types import IntegerType, variant
    from e3.records import package as package_record

    entries = _entries(base)
    _, _, pkg = _package(entries)
    value = package_record.to_east(pkg)
    node = variant("value", {"type": IntegerType, "writable": True})
    for _ in range(depth):
        node = variant("struct", {"a": node})
    tree = dict(value["data"]["structure"].value)
    tree["deep"] = node
    value["data"]["structure"] = variant("struct", dict(sorted(tree.items())))
    return _zip(_with_package(entries, value))
