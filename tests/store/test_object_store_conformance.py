"""One conformance suite, run against every ObjectStore implementation."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from e3.errors import CorruptObject, InvalidName, ObjectNotFound
from e3.store.objects import LocalObjectStore, MemoryObjectStore, ObjectStore


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    return MemoryObjectStore()


def corrupt(store: ObjectStore, h: str, data: bytes) -> None:
    if isinstance(store, LocalObjectStore):
        p = store.path_of(h)
        p.chmod(0o644)
        p.write_bytes(data)
    else:
        assert isinstance(store, MemoryObjectStore)
        store.corrupt_for_tests(h, data)


def test_put_returns_sha256_of_bytes(store: ObjectStore) -> None:
    data = b"hello world"
    assert store.put(data) == hashlib.sha256(data).hexdigest()


def test_get_returns_exact_bytes(store: ObjectStore) -> None:
    for data in (b"", b"x", os.urandom(1 << 20), bytes(range(256)) * 100):
        h = store.put(data)
        assert store.get(h) == data
        assert store.get(h, verify=True) == data


def test_dedup(store: ObjectStore) -> None:
    h1 = store.put(b"same")
    h2 = store.put(b"same")
    assert h1 == h2
    assert list(store.hashes()).count(h1) == 1


def test_has_info_delete(store: ObjectStore) -> None:
    h = store.put(b"abc")
    assert store.has(h)
    assert store.info(h).size == 3
    assert store.delete(h)
    assert not store.has(h)
    assert not store.delete(h)
    with pytest.raises(ObjectNotFound):
        store.get(h)
    with pytest.raises(ObjectNotFound):
        store.info(h)


def test_missing_object_message_names_hash(store: ObjectStore) -> None:
    h = "ab" * 32
    with pytest.raises(ObjectNotFound, match="abababababab"):
        store.get(h)


def test_invalid_hash_is_refused(store: ObjectStore) -> None:
    for bad in ("", "xyz", "AB" * 32, "ab" * 31, "../" + "a" * 61):
        with pytest.raises(InvalidName):
            store.get(bad)


def test_verify_detects_corruption(store: ObjectStore) -> None:
    h = store.put(b"original content")
    corrupt(store, h, b"tampered content")
    assert store.get(h) == b"tampered content"  # unverified read returns what is there
    with pytest.raises(CorruptObject, match=h[:12]):
        store.get(h, verify=True)


def test_hashes_lists_everything(store: ObjectStore) -> None:
    hs = {store.put(str(i).encode()) for i in range(50)}
    assert set(store.hashes()) == hs


def test_concurrent_writers_of_same_object(store: ObjectStore) -> None:
    data = os.urandom(200_000)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                store.put(data)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    h = hashlib.sha256(data).hexdigest()
    assert store.get(h, verify=True) == data


def test_local_layout_and_no_partials_left(tmp_path: Path) -> None:
    s = LocalObjectStore(tmp_path / "objects")
    h = s.put(b"layout")
    assert (tmp_path / "objects" / h[:2] / f"{h[2:]}.beast2").read_bytes() == b"layout"
    assert list(s.partial_files()) == []


def test_local_torn_object_is_repaired_by_put(tmp_path: Path) -> None:
    s = LocalObjectStore(tmp_path / "objects")
    data = b"complete content"
    h = s.put(data)
    corrupt(s, h, data[:5])  # a torn write of the right name but wrong size
    assert s.put(data) == h
    assert s.get(h, verify=True) == data


def test_local_ignores_foreign_files(tmp_path: Path) -> None:
    s = LocalObjectStore(tmp_path / "objects")
    h = s.put(b"real")
    (tmp_path / "objects" / h[:2] / "junk.txt").write_text("x")
    (tmp_path / "objects" / "zz").mkdir()
    (tmp_path / "objects" / h[:2] / (h[2:] + ".beast2.123.abcd.partial")).write_text("x")
    assert list(s.hashes()) == [h]
    assert len(list(s.partial_files())) == 1


def _leftovers(store: ObjectStore) -> list[str]:
    if isinstance(store, LocalObjectStore):
        return sorted(str(p) for p in store.root.rglob("*") if p.is_file())
    return sorted(store.hashes())


def test_put_stream_stores_chunks_under_their_hash(store: ObjectStore) -> None:
    chunks = [os.urandom(1000), b"", os.urandom(1 << 20), b"tail"]
    h = hashlib.sha256(b"".join(chunks)).hexdigest()
    assert store.put_stream(iter(chunks), h) == h
    assert store.get(h, verify=True) == b"".join(chunks)
    assert store.put_stream(iter(chunks), h) == h  # again: the same object
    assert list(store.hashes()) == [h]


def test_put_stream_refuses_bytes_that_do_not_match_and_leaves_nothing(
    store: ObjectStore,
) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(CorruptObject):
        store.put_stream(iter([b"these bytes"]), wrong)
    assert _leftovers(store) == []

    def broken() -> Iterator[bytes]:
        yield b"first chunk"
        raise OSError("the source failed midway")

    with pytest.raises(OSError, match="midway"):
        store.put_stream(broken(), wrong)
    assert _leftovers(store) == []
