"""Package import, export, listing, resolution and removal on a real repository."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from e3.base.hashing import object_hash
from e3.core import package_zip, packages
from e3.errors import InvalidPackage, PackageExists, PackageNotFound
from e3.sdk import export, package
from e3.sdk.loader import load_one
from e3.store.repository import RepoStore
from tests_support import EXAMPLES, versioned_hello


def test_import_places_objects_and_ref(repo: RepoStore, build_example) -> None:
    zp = build_example("hello")
    res = package_zip.import_package(repo, zp)
    assert (res.name, res.version) == ("hello", "1.0.0")
    ref = (repo.root / "packages" / "hello" / "1.0.0").read_text()
    assert ref == res.hash + "\n"
    for h in repo.objects.hashes():
        assert object_hash(repo.objects.get(h)) == h
    assert res.new_objects == res.object_count == len(list(repo.objects.hashes()))


def test_reimport_same_content_is_noop(repo: RepoStore, build_example) -> None:
    zp = build_example("hello")
    package_zip.import_package(repo, zp)
    again = package_zip.import_package(repo, zp)
    assert again.new_objects == 0
    assert not again.replaced


def test_reimport_different_content_needs_force(repo: RepoStore, tmp_path: Path) -> None:
    a = tmp_path / "a.zip"
    b = tmp_path / "b.zip"
    export(versioned_hello("1.0.0", default=1), a)
    export(versioned_hello("1.0.0", default=2), b)
    first = package_zip.import_package(repo, a)
    with pytest.raises(PackageExists, match="--force"):
        package_zip.import_package(repo, b)
    assert packages.resolve(repo, "hello@1.0.0").hash == first.hash
    replaced = package_zip.import_package(repo, b, force=True)
    assert replaced.replaced and replaced.hash != first.hash
    assert packages.resolve(repo, "hello@1.0.0").hash == replaced.hash


def test_export_is_byte_identical_and_roundtrips(
    repo: RepoStore, build_example, tmp_path: Path
) -> None:
    zp = build_example("diamond")
    res = package_zip.import_package(repo, zp)
    out1, out2 = tmp_path / "e1.zip", tmp_path / "e2.zip"
    package_zip.export_package(repo, "diamond", out1)
    package_zip.export_package(repo, "diamond@1.0.0", out2)
    assert out1.read_bytes() == out2.read_bytes()
    # The SDK's zip and the repository's export hold the same entries and bytes.
    with zipfile.ZipFile(zp) as a, zipfile.ZipFile(out1) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        for name in a.namelist():
            assert a.read(name) == b.read(name)
    # Entries are sorted and carry the fixed timestamp.
    with zipfile.ZipFile(out1) as z:
        names = z.namelist()
        assert names == sorted(names)
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    other, _ = __import__("e3.store.repository").store.repository.create_repository(
        tmp_path / "other"
    )
    again = package_zip.import_package(other, out1)
    assert again.hash == res.hash


def test_list_sorted_by_version_order(repo: RepoStore, tmp_path: Path) -> None:
    for v in ("1.9.0", "1.10.0", "1.10.0-rc.1", "0.2.0"):
        zp = tmp_path / f"h{v}.zip"
        export(versioned_hello(v), zp)
        package_zip.import_package(repo, zp)
    assert [p.version for p in packages.list_packages(repo)] == [
        "0.2.0",
        "1.9.0",
        "1.10.0-rc.1",
        "1.10.0",
    ]
    assert packages.resolve(repo, "hello").version == "1.10.0"


def test_scoped_package_names(repo: RepoStore, tmp_path: Path) -> None:
    zp = tmp_path / "s.zip"
    export(versioned_hello("2.0.0", name="@acme/hello"), zp)
    package_zip.import_package(repo, zp)
    assert [p.ref for p in packages.list_packages(repo)] == ["@acme/hello@2.0.0"]
    assert packages.resolve(repo, "@acme/hello").version == "2.0.0"
    packages.remove_package(repo, "@acme/hello@2.0.0")
    assert packages.list_packages(repo) == []
    assert not (repo.root / "packages" / "@acme").exists()


def test_resolve_and_remove_errors(repo: RepoStore, build_example) -> None:
    with pytest.raises(PackageNotFound, match="nope"):
        packages.resolve(repo, "nope")
    package_zip.import_package(repo, build_example("hello"))
    with pytest.raises(PackageNotFound, match="hello@2.0.0"):
        packages.resolve(repo, "hello@2.0.0")
    info = packages.remove_package(repo, "hello")
    assert info.version == "1.0.0"
    assert packages.list_packages(repo) == []
    with pytest.raises(PackageNotFound):
        packages.remove_package(repo, "hello")
    assert repo.objects.has(info.hash)  # objects stay until gc


def test_every_example_imports(repo: RepoStore, build_example) -> None:
    for f in sorted(EXAMPLES.glob("*.py")):
        pkg = load_one(str(f))
        res = package_zip.import_package(repo, build_example(f.stem))
        assert res.name == pkg.name


def test_package_with_cycle_is_refused_on_import(repo: RepoStore, tmp_path: Path) -> None:
    # Hand-build a package whose two tasks read each other's outputs.
    from e3.codec import ir as east_ir
    from e3.codec.types import IntegerType
    from e3.records import package as prec
    from e3.records import task as trec
    from e3.records.structure import DatasetSpec, StructNode
    from e3.store.objects import MemoryObjectStore
    from e3.store.zipfmt import write_zip

    store = MemoryObjectStore()
    cmd = store.put(east_ir.east_runner_command(["east-py", "run"]))
    a_out, b_out = ("tasks", "a", "output"), ("tasks", "b", "output")
    ta = store.put(trec.encode(trec.TaskObject(cmd, (b_out,), a_out)))
    tb = store.put(trec.encode(trec.TaskObject(cmd, (a_out,), b_out)))
    spec = DatasetSpec(IntegerType, False)
    structure = StructNode(
        {
            "tasks": StructNode(
                {"a": StructNode({"output": spec}), "b": StructNode({"output": spec})}
            )
        }
    )
    pobj = prec.PackageObject({"a": ta, "b": tb}, structure, {})
    ph = store.put(prec.encode(pobj))
    entries = package_zip.package_zip_entries(store, "cyc", "1.0.0", ph, pobj, [ph, ta, tb, cmd])
    zp = tmp_path / "cyc.zip"
    write_zip(zp, entries)
    with pytest.raises(InvalidPackage, match="cycle: a -> b -> a|cycle: b -> a -> b"):
        package_zip.import_package(repo, zp)
    assert packages.list_packages(repo) == []
    assert list(repo.objects.hashes()) == []


def test_definition_loader_picks_named_package(tmp_path: Path) -> None:
    src = tmp_path / "two.py"
    src.write_text(
        "import e3\nfrom east import IntegerType\n"
        "p1 = e3.package('one', '1.0.0', e3.input('x', IntegerType))\n"
        "p2 = e3.package('two', '1.0.0', e3.input('y', IntegerType))\n"
    )
    from e3.errors import UsageError

    with pytest.raises(UsageError, match="several packages"):
        load_one(str(src))
    assert load_one(f"{src}:p2").name == "two"
    assert (
        package(
            "x",
            "1",
        ).datasets
        == ()
    )
