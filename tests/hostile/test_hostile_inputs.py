"""Hostile inputs: every refusal is one ``Error:`` line, a meaningful exit code, and no change.

Each case runs against a repository holding the hello example (imported, deployed to
workspace ``ws``; plus an empty, undeployed workspace ``empty``) and checks that

* stderr holds exactly one non-empty line, starting with ``Error: `` and naming the problem,
* the exit code is the one :data:`e3.errors.ERROR_TABLE` assigns (3 not found, 4 conflict,
  5 invalid input, 6 not writable, 7 corrupt), never 0 and never 70 (internal error),
* the repository is byte-for-byte unchanged (:func:`conftest.tree_digest`).

About the last point: every command that takes a workspace lock rewrites the display-only
lock record in ``workspaces/<ws>.lock`` (``e3.store.locks.acquire``), even a read or a refused
write. The parametrized cases therefore tolerate a change in the *content* of lock files that
already existed (never a new or removed file); :func:`test_refused_set_leaves_lock_record_unchanged`
pins the strict behaviour on its own.

Most cases run in process (:func:`conftest.run_cli`); a few go through the real console script
(:func:`conftest.run_e3`) so that anything written straight to file descriptor 2 (east-c's
native diagnostics, a Python traceback) would show up.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from e3.codec import beast2
from e3.codec.types import FloatType, IntegerType, StringType
from e3.records import package as package_record
from e3.records.dataset_ref import DatasetRef
from e3.records.package import PackageObject
from e3.store.repository import RepoStore
from tests_support import CliResult, run_cli, run_e3, tree_digest

EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_INVALID = 5
EXIT_NOT_WRITABLE = 6
EXIT_CORRUPT = 7
EXIT_USAGE = 2
EXIT_INTERNAL = 70

HELLO_REF = "packages/hello/1.0.0"
_HELLO_ZIP: dict[str, bytes] = {}  # built once per test session (building imports the SDK)


# ── helpers ─────────────────────────────────────────────────────────────────


def _digest_ignoring_lock_records(root: Path) -> str:
    """:func:`tree_digest`, except that ``workspaces/*.lock`` files count by name only."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(dirpath, root)
        h.update(b"D" + rel.encode() + b"\0")
        for f in sorted(files):
            p = Path(dirpath) / f
            h.update(b"F" + os.path.join(rel, f).encode() + b"\0")
            if rel == "workspaces" and f.endswith(".lock"):
                h.update(b"lock record")
            elif p.is_symlink():
                h.update(b"L" + os.readlink(p).encode())
            else:
                h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def _file_contents(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            out[(Path(dirpath) / d).relative_to(root).as_posix() + "/"] = b""
        for f in files:
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


@dataclass(frozen=True)
class Snapshot:
    """A repository's state before a command."""

    root: Path
    strict: str
    relaxed: str
    files: dict[str, bytes]

    @staticmethod
    def of(root: Path) -> Snapshot:
        return Snapshot(
            root, tree_digest(root), _digest_ignoring_lock_records(root), _file_contents(root)
        )

    def assert_unchanged(self) -> None:
        if tree_digest(self.root) == self.strict:
            return
        if _digest_ignoring_lock_records(self.root) == self.relaxed:
            return  # only lock records were rewritten (see the module docstring)
        now = _file_contents(self.root)
        added = sorted(now.keys() - self.files.keys())
        removed = sorted(self.files.keys() - now.keys())
        changed = sorted(k for k in now.keys() & self.files.keys() if now[k] != self.files[k])
        pytest.fail(
            f"the repository changed: added {added}, removed {removed}, rewritten {changed}"
        )


def assert_one_error_line(res: CliResult, code: int | None, *needles: str) -> str:
    """Exactly one non-empty ``Error: …`` line naming ``needles``; the expected exit code."""
    assert "Traceback" not in res.err, res.err
    assert len(res.err_lines) == 1, f"expected one stderr line, got: {res.err!r}"
    line = res.err_lines[0]
    assert line.startswith("Error: "), line
    assert res.code != 0, line
    assert res.code != EXIT_INTERNAL, line
    if code is not None:
        assert res.code == code, f"exit {res.code}, expected {code}: {line}"
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    return line


@dataclass
class Env:
    """The repository under attack and the ingredients of hostile inputs."""

    root: Path
    repo: RepoStore
    tmp: Path
    hello_zip: Path
    entries: dict[str, bytes]  # hello zip: name -> bytes

    def file(self, name: str, data: bytes | str) -> Path:
        p = self.tmp / "inputs" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    @property
    def hello_hash(self) -> str:
        return self.entries[HELLO_REF].decode().strip()

    def hello_package(self) -> PackageObject:
        h = self.hello_hash
        return package_record.decode(self.entries[f"objects/{h[:2]}/{h[2:]}.beast2"])

    def x_object_path(self) -> Path:
        ref = self.hello_package().refs[("inputs", "x")]
        assert ref.hash is not None
        return self.repo.objects.path_of(ref.hash)


@pytest.fixture
def env(repo: RepoStore, tmp_path: Path, build_example: Callable[[str], Path]) -> Env:
    if "hello" not in _HELLO_ZIP:
        _HELLO_ZIP["hello"] = build_example("hello").read_bytes()
    zip_path = tmp_path / "hello-1.0.0.zip"
    zip_path.write_bytes(_HELLO_ZIP["hello"])
    with zipfile.ZipFile(zip_path) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    root = repo.root
    for args in (
        ("package", "import", root, zip_path),
        ("workspace", "deploy", root, "ws", "hello"),
        ("workspace", "create", root, "empty"),
    ):
        res = run_cli(*args)
        assert res.code == 0, res.err
    return Env(root, repo, tmp_path, zip_path, entries)


def object_entry(data: bytes) -> tuple[str, str]:
    """``(zip entry name, hash)`` of an object."""
    h = hashlib.sha256(data).hexdigest()
    return f"objects/{h[:2]}/{h[2:]}.beast2", h


def make_zip(items: list[tuple[str, bytes]]) -> bytes:
    """A zip of ``items`` in order (duplicate names allowed)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in items:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
    return buf.getvalue()


def without_package_ref(entries: dict[str, bytes]) -> list[tuple[str, bytes]]:
    return [(n, d) for n, d in entries.items() if not n.startswith("packages/")]


def package_zip(
    env: Env,
    pkg: PackageObject,
    name: str,
    version: str = "1.0.0",
    extra: tuple[bytes, ...] = (),
) -> bytes:
    """hello's objects plus ``pkg`` (and ``extra`` objects) under ``name@version``."""
    pkg_bytes = package_record.encode(pkg)
    pname, phash = object_entry(pkg_bytes)
    items = without_package_ref(env.entries)
    items += [(object_entry(d)[0], d) for d in extra]
    items.append((pname, pkg_bytes))
    items.append((f"packages/{name}/{version}", (phash + "\n").encode()))
    return make_zip(items)


def _central_entry_offset(data: bytes, name: str) -> int:
    i = 0
    while True:
        i = data.find(b"PK\x01\x02", i)
        assert i >= 0, f"no central directory entry {name}"
        nlen = struct.unpack_from("<H", data, i + 28)[0]
        if data[i + 46 : i + 46 + nlen] == name.encode():
            return i
        i += 4


def patch_central(data: bytes, name: str, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite one field of ``name``'s central directory record."""
    out = bytearray(data)
    struct.pack_into(fmt, out, _central_entry_offset(data, name) + offset, value)
    return bytes(out)


def largest_entry(data: bytes) -> zipfile.ZipInfo:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return max(zf.infolist(), key=lambda i: i.compress_size)


# ── hostile package zips ────────────────────────────────────────────────────


def _truncated(cut: float) -> Callable[[Env], bytes]:
    """The hello zip cut at ``cut`` bytes (a fraction: of its length; negative: from the end)."""

    def build(env: Env) -> bytes:
        raw = env.hello_zip.read_bytes()
        at = int(len(raw) * cut) if isinstance(cut, float) else cut
        assert 0 < abs(at) < len(raw)
        return raw[:at]

    return build


def _random_bytes(env: Env) -> bytes:
    return random.Random(1234).randbytes(4096)


def _extra_entry(name: str) -> Callable[[Env], bytes]:
    def build(env: Env) -> bytes:
        return make_zip([*env.entries.items(), (name, b"pwned\n")])

    return build


def _invalid_utf8_name(env: Env) -> bytes:
    """An entry whose name is not UTF-8 although the UTF-8 flag (bit 11) says it is."""
    raw = bytearray(make_zip([("data/QQQQ.ref", b"x"), *env.entries.items()]))
    raw = bytearray(bytes(raw).replace(b"QQQQ", b"\xff\xfe\xc3\x28"))
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.find(sig)
        while i >= 0:
            flags = struct.unpack_from("<H", raw, i + flag_at)[0]
            struct.pack_into("<H", raw, i + flag_at, flags | 0x800)
            i = raw.find(sig, i + 4)
    return bytes(raw)


def _duplicate_package_ref(env: Env) -> bytes:
    other = hashlib.sha256(b"other").hexdigest()
    return make_zip([*env.entries.items(), (HELLO_REF, (other + "\n").encode())])


def _object_hash_mismatch(env: Env) -> bytes:
    name = "objects/00/" + "0" * 62 + ".beast2"
    return make_zip([*env.entries.items(), (name, b"these bytes do not hash to zeros")])


def _object_not_named_by_hash(env: Env) -> bytes:
    return make_zip([*env.entries.items(), ("objects/zz/not-a-hash.beast2", b"x")])


def _ref_to_missing_object(env: Env) -> bytes:
    ghost = hashlib.sha256(b"no such object anywhere").hexdigest()
    return make_zip([*without_package_ref(env.entries), ("packages/ghost/1.0.0", ghost.encode())])


def _package_ref_not_a_hash(env: Env) -> bytes:
    return make_zip([*without_package_ref(env.entries), ("packages/ghost/1.0.0", b"hello\n")])


def _default_value_missing(env: Env) -> bytes:
    value = beast2.encode(-424242, IntegerType)
    pkg = env.hello_package()
    pkg = replace(pkg, refs={**pkg.refs, ("inputs", "x"): DatasetRef.of(object_entry(value)[1])})
    return package_zip(env, pkg, "ghost")  # the value object is not in the zip


def _package_object_garbage(env: Env) -> bytes:
    junk = b"this is not a package object"
    name, h = object_entry(junk)
    return make_zip(
        [*without_package_ref(env.entries), (name, junk), ("packages/bad/1.0.0", h.encode())]
    )


def _package_object_wrong_type(env: Env) -> bytes:
    junk = beast2.encode(42, IntegerType)  # valid Beast2, but an Integer
    name, h = object_entry(junk)
    return make_zip(
        [*without_package_ref(env.entries), (name, junk), ("packages/bad/1.0.0", h.encode())]
    )


def _default_of_wrong_type(env: Env) -> bytes:
    value = beast2.encode("ten", StringType)
    pkg = env.hello_package()
    pkg = replace(pkg, refs={**pkg.refs, ("inputs", "x"): DatasetRef.of(object_entry(value)[1])})
    return package_zip(env, pkg, "bad", extra=(value,))


def _corrupt_deflate(env: Env) -> bytes:
    """Flip bytes in the middle of the largest entry's compressed data."""
    raw = env.hello_zip.read_bytes()
    info = largest_entry(raw)
    nlen, xlen = struct.unpack_from("<HH", raw, info.header_offset + 26)
    mid = info.header_offset + 30 + nlen + xlen + info.compress_size // 2
    out = bytearray(raw)
    out[mid] ^= 0xFF
    out[mid + 1] ^= 0x55
    return bytes(out)


def _declared_smaller_than_content(env: Env) -> bytes:
    raw = env.hello_zip.read_bytes()
    return patch_central(raw, largest_entry(raw).filename, 24, "<I", 5)


def _no_package_entry(env: Env) -> bytes:
    return make_zip(without_package_ref(env.entries))


def _two_packages(env: Env) -> bytes:
    return make_zip([*env.entries.items(), ("packages/other/1.0.0", env.entries[HELLO_REF])])


def _encrypted_flag(env: Env) -> bytes:
    raw = env.hello_zip.read_bytes()
    return patch_central(raw, largest_entry(raw).filename, 8, "<H", 0x1)


def _unsupported_compression(env: Env) -> bytes:
    raw = env.hello_zip.read_bytes()
    return patch_central(raw, largest_entry(raw).filename, 10, "<H", 99)


def _declared_huge_zip64(env: Env) -> bytes:
    """A zip64 entry declaring 16 GiB (over the 1 GiB default per-entry cap), holding 1 KB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in env.entries.items():
            zf.writestr(name, data)
        info = zipfile.ZipInfo("data/bomb.ref", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            f.write(b"\0" * 1024)
        info.file_size = 16 << 30  # what the central directory will declare
    return buf.getvalue()


def _declared_4gib_small_entry(name: str) -> Callable[[Env], bytes]:
    """A (non-zip64) entry that the importer reads whole, declaring ~4 GiB."""

    def build(env: Env) -> bytes:
        return patch_central(env.hello_zip.read_bytes(), name, 24, "<I", 0xFFFFFFF0)

    return build


ZIP_CASES: dict[str, tuple[Callable[[Env], bytes], tuple[str, ...]]] = {
    "truncated-1": (_truncated(1), ("not a valid zip",)),
    "truncated-30": (_truncated(30), ("not a valid zip",)),
    "truncated-500": (_truncated(500), ("not a valid zip",)),
    "truncated-half": (_truncated(0.5), ("not a valid zip",)),
    "truncated-in-central-directory": (_truncated(0.9), ("not a valid zip",)),
    "truncated-before-eocd": (_truncated(-22), ("not a valid zip",)),
    "truncated-last-byte": (_truncated(-1), ("not a valid zip",)),
    "random-bytes": (_random_bytes, ("not a valid zip",)),
    "empty-file": (lambda env: b"", ("not a valid zip",)),
    "dotdot-entry": (_extra_entry("../evil"), ("climbs out", "../evil")),
    "nested-dotdot-entry": (_extra_entry("data/../../evil"), ("climbs out",)),
    "absolute-entry": (_extra_entry("/tmp/x"), ("absolute", "/tmp/x")),
    "drive-letter-entry": (_extra_entry("C:/evil"), ("absolute",)),
    "backslash-entry": (_extra_entry("data\\..\\evil"), ("unsafe entry name",)),
    "invalid-utf8-name": (_invalid_utf8_name, ("utf-8",)),
    "duplicate-package-ref": (_duplicate_package_ref, ("duplicate entry", HELLO_REF)),
    "object-hash-mismatch": (_object_hash_mismatch, ("does not match its hash",)),
    "object-not-named-by-hash": (_object_not_named_by_hash, ("not named by a hash",)),
    "package-ref-to-missing-object": (_ref_to_missing_object, ("package object", "missing")),
    "package-ref-not-a-hash": (_package_ref_not_a_hash, ("does not hold a hash",)),
    "default-value-missing": (_default_value_missing, (".inputs.x", "missing")),
    "package-object-garbage": (_package_object_garbage, ("package object does not decode",)),
    "package-object-wrong-type": (_package_object_wrong_type, ("package object does not decode",)),
    "default-of-wrong-type": (_default_of_wrong_type, (".inputs.x", ".String", ".Integer")),
    "corrupt-deflate": (_corrupt_deflate, ("corrupt",)),
    "declared-smaller-than-content": (_declared_smaller_than_content, ("corrupt",)),
    "no-package-entry": (_no_package_entry, ("no packages/",)),
    "two-packages": (_two_packages, ("more than one package", "hello@1.0.0", "other@1.0.0")),
    "encrypted-entry": (_encrypted_flag, ("encrypted",)),
    "unsupported-compression": (_unsupported_compression, ("unsupported compression",)),
    "zip64-declares-16GiB": (_declared_huge_zip64, ("data/bomb.ref", "too large")),
    "ref-entry-declares-4GiB": (_declared_4gib_small_entry("data/inputs/x.ref"), ("large",)),
    "package-entry-declares-4GiB": (_declared_4gib_small_entry(HELLO_REF), ("large",)),
}


@pytest.mark.parametrize("case", list(ZIP_CASES))
def test_package_import_refuses_hostile_zip(env: Env, case: str) -> None:
    build, needles = ZIP_CASES[case]
    bad = env.file("bad.zip", build(env))
    before = Snapshot.of(env.root)
    res = run_cli("package", "import", env.root, bad)
    assert_one_error_line(res, EXIT_INVALID, "bad.zip", *needles)
    assert res.out == ""
    before.assert_unchanged()


@pytest.mark.parametrize("case", ["dotdot-entry", "two-packages"])
def test_workspace_import_refuses_hostile_zip(env: Env, case: str) -> None:
    """``workspace import`` goes through the same validation and deploys nothing."""
    build, needles = ZIP_CASES[case]
    bad = env.file("bad.zip", build(env))
    before = Snapshot.of(env.root)
    res = run_cli("workspace", "import", env.root, "ws2", bad)
    assert_one_error_line(res, EXIT_INVALID, "bad.zip", *needles)
    before.assert_unchanged()


@pytest.mark.parametrize(
    "evil",
    # The second was found by `python -m fuzz hostile`: a name cut to "" by zipfile
    # raised IndexError inside zipfile instead of a clean refusal.
    [b"data/evil\x00.ref", b"\x00ata/evilN.ref"],
)
def test_package_import_refuses_nul_in_entry_name(env: Env, evil: bytes) -> None:
    raw = make_zip([*env.entries.items(), ("data/evilN.ref", b"x")])
    bad = env.file("bad.zip", raw.replace(b"data/evilN.ref", evil))
    before = Snapshot.of(env.root)
    res = run_cli("package", "import", env.root, bad)
    before.assert_unchanged()
    assert_one_error_line(res, EXIT_INVALID, "unsafe entry name")


def test_package_import_of_a_directory_or_missing_file(env: Env) -> None:
    """A missing input file is a usage error (exit 2), as for ``e3 set``."""
    before = Snapshot.of(env.root)
    assert_one_error_line(run_cli("package", "import", env.root, env.tmp), EXIT_USAGE, "directory")
    missing = env.tmp / "missing.zip"
    assert_one_error_line(
        run_cli("package", "import", env.root, missing), EXIT_USAGE, "missing.zip", "not found"
    )
    before.assert_unchanged()


def test_reimport_with_different_content_is_a_conflict(env: Env) -> None:
    value = beast2.encode(11, IntegerType)
    pkg = env.hello_package()
    pkg = replace(pkg, refs={**pkg.refs, ("inputs", "x"): DatasetRef.of(object_entry(value)[1])})
    changed = env.file("hello-changed.zip", package_zip(env, pkg, "hello", extra=(value,)))
    before = Snapshot.of(env.root)
    res = run_cli("package", "import", env.root, changed)
    assert_one_error_line(res, EXIT_CONFLICT, "hello@1.0.0", "already exists", "--force")
    before.assert_unchanged()
    # The same content again is a no-op, not a conflict.
    assert run_cli("package", "import", env.root, env.hello_zip).code == 0
    before.assert_unchanged()


# ── hostile values for `e3 set` ─────────────────────────────────────────────

_GOOD_X = beast2.encode(12345678901, IntegerType)


def _truncated_beast2(cut: int) -> tuple[str, bytes]:
    return "x.beast2", _GOOD_X[:cut]


SET_CASES: dict[str, tuple[str, bytes, tuple[str, ...], int, tuple[str, ...]]] = {
    # case: (file name, content, extra args, exit code, needles)
    "east-wrong-type": ("s.east", b'"ten"\n', (), EXIT_INVALID, ("s.east", ".Integer")),
    "json-wrong-type": ("s.json", b'"ten"\n', (), EXIT_INVALID, ("s.json", ".Integer")),
    "json-float-for-integer": ("f.json", b"1.5\n", (), EXIT_INVALID, ("f.json", ".Integer")),
    "beast2-string": (
        "s.beast2",
        beast2.encode("ten", StringType),
        (),
        EXIT_INVALID,
        ("s.beast2", ".Integer", ".String"),
    ),
    "beast2-float": (
        "f.beast2",
        beast2.encode(1.5, FloatType),
        (),
        EXIT_INVALID,
        ("f.beast2", ".Integer", ".Float"),
    ),
    "beast2-magic-no-extension": (
        "value",
        beast2.encode("ten", StringType),
        (),
        EXIT_INVALID,
        (".Integer", ".String"),
    ),
    "east-malformed": ("bad.east", b"12 34 (\n", (), EXIT_INVALID, ("bad.east",)),
    "east-unterminated-string": ("bad.east", b'"abc\n', (), EXIT_INVALID, ("bad.east",)),
    "json-malformed": ("bad.json", b'{"a": \n', (), EXIT_INVALID, ("bad.json",)),
    "east-invalid-utf8": ("u.east", b"\xff\xfe12\n", (), EXIT_INVALID, ("u.east", "UTF-8")),
    "json-invalid-utf8": ("u.json", b'"\xc3\x28"\n', (), EXIT_INVALID, ("u.json", "UTF-8")),
    "beast2-ext-not-beast2": ("x.beast2", b"12\n", (), EXIT_INVALID, ("x.beast2", "Beast2")),
    "unknown-extension": ("x.txt", b"12\n", (), EXIT_USAGE, ("x.txt", "format")),
    "type-flag-differs": (
        "five.east",
        b"5\n",
        ("--type", ".String"),
        EXIT_INVALID,
        ("ws.inputs.x", ".Integer", ".String"),
    ),
    "type-flag-unparsable": (
        "five.east",
        b"5\n",
        ("--type", "notatype"),
        EXIT_INVALID,
        ("notatype",),
    ),
    "format-flag-lies": ("five.east", b"5\n", ("--format", "beast2"), EXIT_INVALID, ("Beast2",)),
}
for _cut in (0, 4, 8, 9, 12, 14, 16, 20, len(_GOOD_X) - 1):
    SET_CASES[f"beast2-truncated-{_cut}"] = (
        *_truncated_beast2(_cut),
        (),
        EXIT_INVALID,
        ("Beast2",),
    )


@pytest.mark.parametrize("case", list(SET_CASES))
def test_set_refuses_hostile_value(env: Env, case: str) -> None:
    name, content, extra, code, needles = SET_CASES[case]
    f = env.file(name, content)
    before = Snapshot.of(env.root)
    res = run_cli("set", env.root, "ws.inputs.x", f, *extra)
    assert_one_error_line(res, code, *needles)
    assert res.out == ""
    before.assert_unchanged()
    assert run_cli("get", env.root, "ws.inputs.x").out == "10\n"


def test_truncated_beast2_error_names_the_file(env: Env) -> None:
    f = env.file("x.beast2", _GOOD_X[:12])
    res = run_cli("set", env.root, "ws.inputs.x", f)
    assert_one_error_line(res, EXIT_INVALID, "x.beast2")


def test_set_missing_file_or_directory(env: Env) -> None:
    before = Snapshot.of(env.root)
    missing = env.tmp / "missing.east"
    assert_one_error_line(
        run_cli("set", env.root, "ws.inputs.x", missing), EXIT_USAGE, "missing.east", "not found"
    )
    assert_one_error_line(run_cli("set", env.root, "ws.inputs.x", env.tmp), EXIT_USAGE, "directory")
    before.assert_unchanged()


@pytest.mark.parametrize("path", ["ws.tasks.double", "ws.tasks.double.output"])
def test_set_task_output_is_not_writable(env: Env, path: str) -> None:
    f = env.file("five.east", "5\n")
    before = Snapshot.of(env.root)
    res = run_cli("set", env.root, path, f)
    assert_one_error_line(res, EXIT_NOT_WRITABLE, "ws.tasks.double", "not writable")
    before.assert_unchanged()


def test_set_function_ir_with_its_own_value_is_not_writable(env: Env) -> None:
    ir = run_cli("get", env.root, "ws.tasks.double.function_ir", "-f", "beast2")
    assert ir.code == 0, ir.err
    f = env.file("ir.beast2", ir.raw)
    before = Snapshot.of(env.root)
    res = run_cli("set", env.root, "ws.tasks.double.function_ir", f)
    assert_one_error_line(res, EXIT_NOT_WRITABLE, "function_ir", "not writable")
    before.assert_unchanged()


def test_set_function_ir_with_any_value_is_not_writable(env: Env) -> None:
    f = env.file("five.east", "5\n")
    before = Snapshot.of(env.root)
    res = run_cli("set", env.root, "ws.tasks.double.function_ir", f)
    before.assert_unchanged()
    line = assert_one_error_line(res, EXIT_NOT_WRITABLE, "not writable")
    assert len(line) < 500


def test_refused_set_leaves_lock_record_unchanged(env: Env) -> None:
    f = env.file("s.json", '"ten"\n')
    before = tree_digest(env.root)
    assert run_cli("set", env.root, "ws.inputs.x", f).code == EXIT_INVALID
    assert tree_digest(env.root) == before


# ── unknown names, bad paths ────────────────────────────────────────────────

NAME_CASES: dict[str, tuple[tuple[str, ...], int, tuple[str, ...]]] = {
    # case: (arguments after the repository, exit code, needles); "{five}" is a value file
    "deploy-unknown-package": (("workspace", "deploy", "ws", "nope"), EXIT_NOT_FOUND, ("nope",)),
    "deploy-unknown-version": (
        ("workspace", "deploy", "ws", "hello@9.9.9"),
        EXIT_NOT_FOUND,
        ("hello@9.9.9",),
    ),
    "deploy-unknown-package-new-ws": (
        ("workspace", "deploy", "newws", "nope"),
        EXIT_NOT_FOUND,
        ("nope",),
    ),
    "deploy-bad-package-name": (
        ("workspace", "deploy", "ws", "../hello"),
        EXIT_INVALID,
        ("../hello",),
    ),
    "export-unknown-package": (
        ("package", "export", "nope", "{out}"),
        EXIT_NOT_FOUND,
        ("nope",),
    ),
    "remove-unknown-version": (
        ("package", "remove", "hello@9.9.9"),
        EXIT_NOT_FOUND,
        ("hello@9.9.9",),
    ),
    "get-unknown-dataset": (("get", "ws.inputs.nope"), EXIT_NOT_FOUND, ("'nope'", "ws.inputs")),
    "get-unknown-subtree": (("get", "ws.nope.x"), EXIT_NOT_FOUND, ("'nope'",)),
    "get-below-a-dataset": (("get", "ws.inputs.x.deeper"), EXIT_NOT_FOUND, ("deeper",)),
    "set-unknown-dataset": (("set", "ws.inputs.nope", "{five}"), EXIT_NOT_FOUND, ("'nope'",)),
    "status-unknown-dataset": (("status", "ws.inputs.nope"), EXIT_NOT_FOUND, ("'nope'",)),
    "list-unknown-dataset": (("list", "ws.inputs.nope"), EXIT_NOT_FOUND, ("'nope'",)),
    "get-unassigned-output": (
        ("get", "ws.tasks.double.output"),
        EXIT_NOT_FOUND,
        ("ws.tasks.double.output", "unassigned"),
    ),
    "get-unassigned-task-alias": (
        ("get", "ws.tasks.double"),
        EXIT_NOT_FOUND,
        ("ws.tasks.double", "unassigned"),
    ),
    "get-tree": (("get", "ws.inputs"), EXIT_INVALID, ("ws.inputs", "tree")),
    "set-tree": (("set", "ws.inputs", "{five}"), EXIT_INVALID, ("ws.inputs", "tree")),
    "get-workspace-root": (("get", "ws"), EXIT_INVALID, ("tree",)),
    "get-unterminated-backtick": (("get", "ws.`x"), EXIT_INVALID, ("unterminated backtick",)),
    "get-empty-segment": (("get", "ws..x"), EXIT_INVALID, ("empty segment",)),
    "get-trailing-dot": (("get", "ws.inputs."), EXIT_INVALID, ("trailing",)),
    "get-empty-path": (("get", ""), EXIT_INVALID, ("invalid path",)),
    "get-text-after-quote": (("get", "ws.`inputs`x"), EXIT_INVALID, ("quoted name",)),
    "get-climbing-path": (("get", "../x.inputs.x"), EXIT_INVALID, ("invalid path",)),
    "create-dotted-workspace": (("workspace", "create", "a.b"), EXIT_INVALID, ("'a.b'",)),
    "create-climbing-workspace": (("workspace", "create", "../x"), EXIT_INVALID, ("'../x'",)),
    "create-empty-workspace-name": (
        ("workspace", "create", ""),
        EXIT_INVALID,
        ("invalid workspace name",),
    ),
    "deploy-climbing-workspace": (
        ("workspace", "deploy", "../x", "hello"),
        EXIT_INVALID,
        ("'../x'",),
    ),
    "create-existing-workspace": (("workspace", "create", "ws"), EXIT_CONFLICT, ("'ws'",)),
    "get-undeployed": (("get", "empty.inputs.x"), EXIT_CONFLICT, ("'empty'", "deploy")),
    "set-undeployed": (("set", "empty.inputs.x", "{five}"), EXIT_CONFLICT, ("'empty'",)),
    "list-undeployed": (("list", "empty"), EXIT_CONFLICT, ("'empty'",)),
}

# Commands on an unknown workspace: right error, but each leaves workspaces/nope.lock behind.
UNKNOWN_WS_CASES: dict[str, tuple[tuple[str, ...], int, tuple[str, ...]]] = {
    "get-unknown-workspace": (("get", "nope.inputs.x"), EXIT_NOT_FOUND, ("'nope'",)),
    "set-unknown-workspace": (("set", "nope.inputs.x", "{five}"), EXIT_NOT_FOUND, ("'nope'",)),
    "status-unknown-workspace": (("status", "nope.inputs.x"), EXIT_NOT_FOUND, ("'nope'",)),
    "list-unknown-workspace": (("list", "nope"), EXIT_NOT_FOUND, ("'nope'",)),
    "remove-unknown-workspace": (("workspace", "remove", "nope"), EXIT_NOT_FOUND, ("'nope'",)),
    "export-unknown-workspace": (
        ("workspace", "export", "nope", "{out}"),
        EXIT_NOT_FOUND,
        ("'nope'",),
    ),
}


def _run_named(env: Env, args: tuple[str, ...]) -> CliResult:
    five = env.file("five.east", "5\n")
    out = env.tmp / "out.zip"
    subst = {"{five}": str(five), "{out}": str(out)}
    argv = [subst.get(a, a) for a in args]
    # The repository follows the command word(s): `e3 get <repo> …`, `e3 package export <repo> …`.
    split = 2 if argv[0] in ("workspace", "package", "repo") else 1
    res = run_cli(*argv[:split], env.root, *argv[split:])
    assert not out.exists(), "a refused export wrote its output file"
    return res


@pytest.mark.parametrize(
    "case",
    [*NAME_CASES, *UNKNOWN_WS_CASES],
)
def test_unknown_names_and_bad_paths(env: Env, case: str) -> None:
    args, code, needles = {**NAME_CASES, **UNKNOWN_WS_CASES}[case]
    before = Snapshot.of(env.root)
    res = _run_named(env, args)
    assert_one_error_line(res, code, *needles)
    before.assert_unchanged()


@pytest.mark.parametrize("case", list(UNKNOWN_WS_CASES))
def test_unknown_workspace_error_line(env: Env, case: str) -> None:
    """The error itself is right (the stray lock file is pinned by the xfail cases above)."""
    args, code, needles = UNKNOWN_WS_CASES[case]
    assert_one_error_line(_run_named(env, args), code, *needles)


NOT_A_REPO_COMMANDS: list[tuple[str, ...]] = [
    ("repo", "status"),
    ("repo", "gc", "{repo}", "--min-age", "0"),
    ("repo", "remove", "{repo}", "-r"),
    ("package", "list"),
    ("package", "import", "{repo}", "{zip}"),
    ("workspace", "create", "{repo}", "ws"),
    ("workspace", "deploy", "{repo}", "ws", "hello"),
    ("workspace", "list"),
    ("list",),
    ("get", "{repo}", "ws.inputs.x"),
    ("set", "{repo}", "ws.inputs.x", "{five}"),
]


@pytest.mark.parametrize("target", ["plain-dir", "missing-dir", "partial-repo"])
@pytest.mark.parametrize("command", NOT_A_REPO_COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_commands_on_something_that_is_not_a_repository(
    env: Env, target: str, command: tuple[str, ...]
) -> None:
    where = env.tmp / "not-a-repo"
    if target != "missing-dir":
        where.mkdir()
        (where / "notes.txt").write_text("keep me\n")
    if target == "partial-repo":  # three of the four required directories
        for d in ("objects", "packages", "workspaces"):
            (where / d).mkdir()
    before = tree_digest(where) if where.exists() else None
    subst = {
        "{repo}": str(where),
        "{zip}": str(env.hello_zip),
        "{five}": str(env.file("f.east", "5")),
    }
    argv = [subst.get(a, a) for a in command]
    if "{repo}" not in command:
        argv.append(str(where))
    res = run_cli(*argv)
    assert_one_error_line(res, EXIT_NOT_FOUND, "repository not found", "not-a-repo")
    if before is None:
        assert not where.exists()
    else:
        assert tree_digest(where) == before


# ── corrupted objects in the store ──────────────────────────────────────────


def _corrupt_x(env: Env, mutate: Callable[[bytes], bytes]) -> Path:
    p = env.x_object_path()
    data = p.read_bytes()
    p.chmod(0o644)
    p.write_bytes(mutate(data))
    p.chmod(0o444)
    return p


_CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda b: b"",
    "truncated-5": lambda b: b[:5],
    "truncated-10": lambda b: b[:10],
    "truncated-15": lambda b: b[:15],
    "truncated-last-byte": lambda b: b[:-1],
    "header-byte-flipped": lambda b: b[:10] + bytes([b[10] ^ 0xFF]) + b[11:],
    "frame-byte-flipped": lambda b: b[:15] + bytes([b[15] ^ 0xFF]) + b[16:],
    "garbage-appended": lambda b: b + b"\x00garbage",
}


@pytest.mark.parametrize("corruption", list(_CORRUPTIONS))
def test_get_of_corrupted_object_fails_with_one_line(
    env: Env, corruption: str, capfd: pytest.CaptureFixture[str]
) -> None:
    _corrupt_x(env, _CORRUPTIONS[corruption])
    before = Snapshot.of(env.root)
    res = run_cli("get", env.root, "ws.inputs.x")
    assert_one_error_line(res, None)
    assert res.out == ""
    assert capfd.readouterr().err == "", "diagnostics leaked to file descriptor 2"
    before.assert_unchanged()


def test_get_of_corrupted_object_via_console_script(env: Env) -> None:
    _corrupt_x(env, _CORRUPTIONS["truncated-15"])
    res = run_e3("get", env.root, "ws.inputs.x")
    assert_one_error_line(res, None)
    assert res.out == ""


def test_corrupted_object_error_names_object_or_dataset(env: Env) -> None:
    p = _corrupt_x(env, _CORRUPTIONS["truncated-15"])
    h = p.parent.name + p.name.removesuffix(".beast2")
    line = assert_one_error_line(run_cli("get", env.root, "ws.inputs.x"), None)
    assert h[:12] in line or "ws.inputs.x" in line


def test_corrupted_object_exit_code_is_corrupt(env: Env) -> None:
    _corrupt_x(env, _CORRUPTIONS["truncated-15"])
    assert_one_error_line(run_cli("get", env.root, "ws.inputs.x"), EXIT_CORRUPT)


@pytest.mark.parametrize("fmt", ["east", "beast2"])
def test_get_detects_corrupted_but_decodable_object(env: Env, fmt: str) -> None:
    # The last byte of the canonical encoding of 10 is its zigzag varint (0x14); 0x16 is 11.
    p = _corrupt_x(env, lambda b: b[:-1] + bytes([b[-1] + 2]))
    assert run_cli("convert", p).out == "11\n"
    assert_one_error_line(run_cli("get", env.root, "ws.inputs.x", "-f", fmt), EXIT_CORRUPT)


# ── e3 convert of hostile bytes ─────────────────────────────────────────────

CONVERT_INPUTS: dict[str, bytes] = {
    **{f"truncated-{n}": _GOOD_X[:n] for n in (9, 12, 14, 16, 20, len(_GOOD_X) - 1)},
    "magic-then-random": beast2.MAGIC_V5 + random.Random(7).randbytes(200),
    "magic-then-0xff": beast2.MAGIC_V5 + b"\xff" * 64,
    "v4-magic-then-random": beast2.MAGIC_V4 + random.Random(8).randbytes(200),
    "magic-only": beast2.MAGIC_V5,
}


@pytest.mark.parametrize("case", list(CONVERT_INPUTS))
def test_convert_hostile_beast2_file(
    tmp_path: Path, case: str, capfd: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.beast2"
    src.write_bytes(CONVERT_INPUTS[case])
    out = tmp_path / "out.east"
    res = run_cli("convert", src, "-o", out)
    assert_one_error_line(res, EXIT_INVALID, "Beast2")
    assert capfd.readouterr().err == "", "native diagnostics leaked to file descriptor 2"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in.beast2"]


@pytest.mark.parametrize("case", ["truncated-12", "truncated-20", "magic-then-random"])
@pytest.mark.parametrize("via", ["stdin", "file"])
def test_convert_hostile_beast2_console_script(tmp_path: Path, case: str, via: str) -> None:
    data = CONVERT_INPUTS[case]
    if via == "stdin":
        res = run_e3("convert", "--to", "json", input=data)
    else:
        src = tmp_path / "in.beast2"
        src.write_bytes(data)
        res = run_e3("convert", src, "--to", "json")
    assert_one_error_line(res, EXIT_INVALID, "Beast2")
    assert res.out == ""


# ── a few full round trips through the real console script ─────────────────


def test_console_script_truncated_zip(env: Env) -> None:
    bad = env.file("bad.zip", env.hello_zip.read_bytes()[:700])
    before = Snapshot.of(env.root)
    res = run_e3("package", "import", env.root, bad)
    assert_one_error_line(res, EXIT_INVALID, "bad.zip", "not a valid zip")
    before.assert_unchanged()


def test_console_script_zip_slip(env: Env) -> None:
    bad = env.file("bad.zip", _extra_entry("../../evil")(env))
    before = Snapshot.of(env.root)
    res = run_e3("package", "import", env.root, bad)
    assert_one_error_line(res, EXIT_INVALID, "climbs out")
    before.assert_unchanged()
    assert not (env.root.parent / "evil").exists()


@pytest.mark.parametrize(
    ("name", "content", "code", "needles"),
    [
        ("s.beast2", beast2.encode("ten", StringType), EXIT_INVALID, (".Integer", ".String")),
        ("x.beast2", _GOOD_X[:14], EXIT_INVALID, ("Beast2",)),
        ("u.json", b'"\xff"', EXIT_INVALID, ("UTF-8",)),
    ],
)
def test_console_script_set_hostile_value(
    env: Env, name: str, content: bytes, code: int, needles: tuple[str, ...]
) -> None:
    f = env.file(name, content)
    before = Snapshot.of(env.root)
    res = run_e3("set", env.root, "ws.inputs.x", f)
    assert_one_error_line(res, code, *needles)
    before.assert_unchanged()


def test_console_script_set_from_stdin_wrong_type(env: Env) -> None:
    before = Snapshot.of(env.root)
    res = run_e3("set", env.root, "ws.inputs.x", "-", input=beast2.encode(1.5, FloatType))
    assert_one_error_line(res, EXIT_INVALID, ".Integer", ".Float")
    before.assert_unchanged()


def test_console_script_task_output_not_writable(env: Env) -> None:
    f = env.file("five.east", "5\n")
    before = Snapshot.of(env.root)
    res = run_e3("set", env.root, "ws.tasks.double.output", f)
    assert_one_error_line(res, EXIT_NOT_WRITABLE, "not writable")
    before.assert_unchanged()
