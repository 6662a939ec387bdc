"""Crash safety: SIGKILL processes that write objects and refs, then check the repository.

A small writer script (run with this interpreter, i.e. the venv's Python) loops forever:
set ``ws.inputs.x`` to a growing integer, store an object of random bytes (up to ~1 MB),
re-import a package (remove its ref, delete its own objects, import the prebuilt zip again),
and redeploy workspace ``ws2``. The test starts it, waits for it to report progress, lets it
run a random few milliseconds more (the fault injection itself), SIGKILLs it and checks:

* every ``objects/<hh>/<62 hex>.beast2`` hashes to its name, and nothing else but ``.partial``
  staging files lives under ``objects/``;
* every dataset ``.ref`` file under ``workspaces/<ws>/`` decodes, and value refs point to
  objects that exist; every workspace state file decodes;
* every package ref holds a hash whose object, and everything that object references, exists;
* no acknowledged ``set`` was lost, and the workspaces still read (``e3 get``).

``E3_CRASH_KILLS=N`` sets the number of kills (default 60, about 15-25 s). Then
``e3 repo gc --min-age 0`` must remove the staging files left under ``objects/`` and the
workspaces must still read.

Two more tests kill writers at deterministic points: blocked just before the rename/link
that commits an object, a dataset ref or a package ref (what does ``gc`` do with the staging
file left behind?), and between the two system calls that rewrite a lock record.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from e3.base.atomic import PARTIAL_SUFFIX
from e3.codec import beast2
from e3.codec.types import IntegerType
from e3.core import package_check, packages, workspaces
from e3.errors import E3Error
from e3.records import dataset_ref, workspace
from e3.records import package as package_record
from e3.records.dataset_ref import DatasetRef
from e3.store import locks
from e3.store.repository import RepoStore
from tests_support import run_cli, run_e3

# Read at import time: the autouse fixture in conftest.py removes every E3_* variable.
KILLS = int(os.environ.get("E3_CRASH_KILLS", "60"))
PROGRESS_TIMEOUT = 60.0  # seconds a writer may take to report its first step
CRASH_DEFAULT = -777  # the crash package's default for inputs.x (never a value the writer sets)

_HEX_PREFIX = re.compile(r"[0-9a-f]{2}")
_HEX_REST = re.compile(r"[0-9a-f]{62}\.beast2")
_HASH_LINE = re.compile(r"[0-9a-f]{64}\n")

WRITER = r"""
import json, os, random, sys
from pathlib import Path

from e3.core import datasets, package_zip, packages, workspaces
from e3.errors import PackageNotFound
from e3.store.repository import open_repository

root, zip_path, progress, start, own = sys.argv[1:6]
repo = open_repository(root)
own_objects = json.loads(own)
rng = random.Random()


def report(i, step):
    tmp = Path(progress + ".tmp")
    tmp.write_text(json.dumps({"i": i, "step": step}))
    os.replace(tmp, progress)


i = int(start)
while True:
    i += 1
    datasets.set_dataset_value(repo, "ws", ("inputs", "x"), i)
    report(i, "set")
    repo.objects.put(os.urandom(rng.randint(0, 1 << 20)))
    report(i, "put")
    try:
        packages.remove_package(repo, "crash@1.0.0")
    except PackageNotFound:
        pass
    for h in own_objects:
        repo.objects.delete(h)
    report(i, "removed")
    package_zip.import_package(repo, Path(zip_path))
    report(i, "import")
    workspaces.deploy(repo, "ws2", "hello@1.0.0")
    report(i, "deploy")
"""

# Blocks the commit step (rename or link) of a write whose target matches a pattern, after
# telling the test it got there; the test then SIGKILLs it. Everything before the commit
# (the staging file, fsynced) is in place, as after a real crash at that instant.
BLOCKING_WRITER = r"""
import fnmatch, os, sys, time
from pathlib import Path

from e3.core import datasets, package_zip, packages
from e3.store.repository import open_repository

root, zip_path, ready, what, pattern = sys.argv[1:6]
repo = open_repository(root)


def blocking(real):
    def call(src, dst, *args, **kwargs):
        if fnmatch.fnmatch(os.fspath(dst), pattern):
            Path(ready + ".tmp").write_text(os.fspath(src))
            os.replace(ready + ".tmp", ready)
            while True:
                time.sleep(60)
        return real(src, dst, *args, **kwargs)

    return call


os.rename = blocking(os.rename)
os.link = blocking(os.link)
if what == "object":
    repo.objects.put(os.urandom(300_000))
elif what == "dataset-ref":
    datasets.set_dataset_value(repo, "ws", ("inputs", "x"), 4242)
elif what == "package-ref":
    package_zip.import_package(repo, Path(zip_path))
raise SystemExit("the blocked write was never reached")
"""


# ── set-up ──────────────────────────────────────────────────────────────────


@dataclass
class Setup:
    """A repository with hello deployed to ``ws`` and ``ws2``, and a second package's zip."""

    repo: RepoStore
    tmp: Path
    crash_zip: Path
    crash_own_objects: list[str]  # objects only the crash package uses

    @property
    def root(self) -> Path:
        return self.repo.root


def _object_name(data: bytes) -> tuple[str, str]:
    h = hashlib.sha256(data).hexdigest()
    return f"objects/{h[:2]}/{h[2:]}.beast2", h


@pytest.fixture
def setup(repo: RepoStore, tmp_path: Path, build_example: Callable[[str], Path]) -> Setup:
    hello_zip = build_example("hello")
    for args in (
        ("package", "import", repo.root, hello_zip),
        ("workspace", "deploy", repo.root, "ws", "hello@1.0.0"),
        ("workspace", "deploy", repo.root, "ws2", "hello@1.0.0"),
    ):
        res = run_cli(*args)
        assert res.code == 0, res.err
    # "crash@1.0.0": hello with another default for inputs.x, so importing it writes two
    # objects of its own (its package object and that value) besides its ref.
    with zipfile.ZipFile(hello_zip) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    hello_hash = entries.pop("packages/hello/1.0.0").decode().strip()
    hello = package_record.decode(entries[f"objects/{hello_hash[:2]}/{hello_hash[2:]}.beast2"])
    value = beast2.encode(CRASH_DEFAULT, IntegerType)
    value_name, value_hash = _object_name(value)
    pkg = replace(hello, refs={**hello.refs, ("inputs", "x"): DatasetRef.of(value_hash)})
    pkg_bytes = package_record.encode(pkg)
    pkg_name, pkg_hash = _object_name(pkg_bytes)
    entries[value_name] = value
    entries[pkg_name] = pkg_bytes
    entries["packages/crash/1.0.0"] = (pkg_hash + "\n").encode()
    crash_zip = tmp_path / "crash-1.0.0.zip"
    with zipfile.ZipFile(crash_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            zf.writestr(name, entries[name])
    return Setup(repo, tmp_path, crash_zip, [pkg_hash, value_hash])


# ── checks ──────────────────────────────────────────────────────────────────


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            yield Path(dirpath) / f


def partial_files(root: Path) -> list[Path]:
    return [p for p in _files(root) if p.name.endswith(PARTIAL_SUFFIX)]


def check_consistent(repo: RepoStore) -> None:
    """The invariants a crash at any instant must preserve."""
    root = repo.root
    # Objects: named by the SHA-256 of their bytes; nothing else but staging files.
    for p in _files(root / "objects"):
        if p.name.endswith(PARTIAL_SUFFIX):
            continue
        rel = p.relative_to(root / "objects")
        assert len(rel.parts) == 2, f"unexpected file objects/{rel}"
        prefix, rest = rel.parts
        assert _HEX_PREFIX.fullmatch(prefix), f"unexpected file objects/{rel}"
        assert _HEX_REST.fullmatch(rest), f"unexpected file objects/{rel}"
        actual = hashlib.sha256(p.read_bytes()).hexdigest()
        assert actual == prefix + rest.removesuffix(".beast2"), f"torn object objects/{rel}"
    # Workspaces: state files and every ref file a reader may trust (data/, a deploy's
    # staging dir once marked, and a swapped-out .data-old/). An unmarked .data-new/ is a
    # deployment cut short: its refs are created in place, unread, removed by the next one.
    for p in _files(root / "workspaces"):
        rel = p.relative_to(root)
        if p.name.endswith(PARTIAL_SUFFIX):
            continue
        staging = root / Path(*rel.parts[:3])
        if staging.name == ".data-new" and not (staging / workspaces.DEPLOY_MARKER).is_file():
            continue
        if p.parent == root / "workspaces" and p.suffix == ".beast2":
            raw = p.read_bytes()
            if raw:  # empty: created, not deployed
                workspace.decode(raw)
        elif p.suffix == ".ref":
            try:
                ref = dataset_ref.decode(p.read_bytes())
            except E3Error as exc:
                raise AssertionError(f"torn ref file {rel}: {exc}") from exc
            if ref.kind == "value":
                assert ref.hash is not None
                assert repo.objects.has(ref.hash), f"{rel} points to missing object {ref.hash}"
    # Package refs: a hash whose object and closure exist.
    listed = {(p.name, p.version) for p in packages.list_packages(repo)}
    for p in _files(root / "packages"):
        if p.name.endswith(PARTIAL_SUFFIX):
            continue
        rel = p.relative_to(root / "packages")
        text = p.read_text()
        assert _HASH_LINE.fullmatch(text), f"torn package ref packages/{rel}: {text!r}"
        h = text.strip()
        assert repo.objects.has(h), f"packages/{rel} points to missing object {h}"
        package_check.package_closure(repo, h)  # raises if a referenced object is missing
        assert ("/".join(rel.parts[:-1]), rel.parts[-1]) in listed


def get_x(root: Path, ws: str = "ws") -> int:
    res = run_cli("get", root, f"{ws}.inputs.x")
    assert res.code == 0, res.err
    return int(res.out)


# ── random kills ────────────────────────────────────────────────────────────


def _start_writer(
    script: Path, setup: Setup, progress: Path, start: int
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(setup.root),
            str(setup.crash_zip),
            str(progress),
            str(start),
            json.dumps(setup.crash_own_objects),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll (bounded) until ``path`` exists; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"writer exited with {proc.returncode} before reporting progress:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"writer reported no progress within {timeout} s")
        time.sleep(0.005)


def _kill(proc: subprocess.Popen[bytes]) -> str:
    """SIGKILL ``proc`` and reap it; returns what it wrote on stderr."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    err = b""
    if proc.stderr:
        err = proc.stderr.read()
        proc.stderr.close()
    return err.decode("utf-8", "replace")


def test_sigkill_at_random_moments_never_tears_the_repository(setup: Setup) -> None:
    script = setup.tmp / "writer.py"
    script.write_text(WRITER)
    progress = setup.tmp / "progress.json"
    rng = random.Random()
    steps: dict[str, int] = {}
    acked = get_x(setup.root)
    assert acked == 10
    for _ in range(KILLS):
        progress.unlink(missing_ok=True)
        proc = _start_writer(script, setup, progress, acked)
        try:
            _wait_for(progress, proc, PROGRESS_TIMEOUT)
            time.sleep(rng.uniform(0, 0.05))  # fault injection: kill at a random instant
        finally:
            err = _kill(proc)
        assert proc.returncode == -signal.SIGKILL, f"the writer failed by itself:\n{err}"
        last = json.loads(progress.read_text())
        steps[last["step"]] = steps.get(last["step"], 0) + 1

        check_consistent(setup.repo)
        # An acknowledged set is never lost; at most the next one landed before the kill.
        x = get_x(setup.root)
        assert x in (last["i"], last["i"] + 1), (x, last)
        assert get_x(setup.root, "ws2") == 10
        acked = x

    # Kills landed all over the loop, not only right after the first report.
    assert len(steps) >= 2 or KILLS < 10, steps

    leftovers = partial_files(setup.root)
    res = run_e3("repo", "gc", setup.root, "--min-age", "0")
    assert res.code == 0, res.err
    assert f"Partials deleted: {len(leftovers)}" in res.out, res.out
    assert partial_files(setup.root / "objects") == []
    check_consistent(setup.repo)
    res = run_e3("get", setup.root, "ws.inputs.x")
    assert res.code == 0, res.err
    assert int(res.out) == acked
    res = run_e3("get", setup.root, "ws2.inputs.x")
    assert (res.code, res.out) == (0, "10\n"), res.err
    # The repository is still fully usable: a fresh writer step succeeds.
    assert run_cli("set", setup.root, "ws.inputs.x", _value_file(setup.tmp, 99)).code == 0
    assert get_x(setup.root) == 99


def _value_file(tmp: Path, value: int) -> Path:
    p = tmp / f"{value}.east"
    p.write_text(f"{value}\n")
    return p


# ── deterministic kills just before the commit ──────────────────────────────


@pytest.mark.parametrize(
    ("what", "pattern", "staged_under"),
    [
        ("object", "*/objects/*.beast2", "objects"),
        pytest.param("dataset-ref", "*/inputs/x.ref", "workspaces/ws/data"),
        pytest.param("package-ref", "*/packages/crash/1.0.0", "packages"),
    ],
)
def test_kill_before_commit_leaves_only_a_partial_that_gc_removes(
    setup: Setup, what: str, pattern: str, staged_under: str
) -> None:
    script = setup.tmp / "blocking_writer.py"
    script.write_text(BLOCKING_WRITER)
    ready = setup.tmp / "ready"
    before = {p.relative_to(setup.root) for p in _files(setup.root)}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(setup.root),
            str(setup.crash_zip),
            str(ready),
            what,
            pattern,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(ready, proc, PROGRESS_TIMEOUT)
    finally:
        _kill(proc)
    staged = Path(ready.read_text())
    assert staged.name.endswith(PARTIAL_SUFFIX)
    assert staged.exists()
    assert staged.is_relative_to(setup.root / staged_under)

    check_consistent(setup.repo)
    assert get_x(setup.root) == 10  # the interrupted set did not happen
    assert "crash" not in {p.name for p in packages.list_packages(setup.repo)}
    new_files = {p.relative_to(setup.root) for p in _files(setup.root)} - before
    assert all(p.name.endswith(PARTIAL_SUFFIX) or p.suffix == ".beast2" for p in new_files), (
        new_files
    )

    res = run_e3("repo", "gc", setup.root, "--min-age", "0")
    assert res.code == 0, res.err
    check_consistent(setup.repo)
    assert get_x(setup.root) == 10
    assert partial_files(setup.root) == [], "gc left staging files behind"


LOCK_WRITER = r"""
import os, sys, time
from pathlib import Path

from e3.core import workspaces
from e3.store.repository import open_repository

root, ready = sys.argv[1:3]
repo = open_repository(root)


def blocked_pwrite(fd, data, offset):
    Path(ready + ".tmp").write_text(str(len(data)))
    os.replace(ready + ".tmp", ready)
    while True:
        time.sleep(60)


os.pwrite = blocked_pwrite  # e3.store.locks: ftruncate(0), then pwrite(record)
workspaces.deploy(repo, "ws", "hello")  # takes the workspace lock exclusively
raise SystemExit("the lock was never taken")
"""


def test_kill_while_recording_a_lock_holder_leaves_a_readable_record(setup: Setup) -> None:
    lock_path = setup.repo.workspace_lock_path("ws")
    # A previous exclusive holder with a long command line was killed and left a long record
    # (a holder that releases the lock clears its record).
    long_command = os.urandom(400).hex()
    held = locks.acquire(
        lock_path, "exclusive", operation="deployment", label="ws", command=long_command
    )
    left_behind = lock_path.read_bytes()
    held.release()
    assert locks.recorded_state(lock_path) is None
    lock_path.write_bytes(left_behind)
    assert locks.recorded_state(lock_path) is not None
    script = setup.tmp / "lock_writer.py"
    script.write_text(LOCK_WRITER)
    ready = setup.tmp / "ready"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(setup.root), str(ready)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(ready, proc, PROGRESS_TIMEOUT)
    finally:
        _kill(proc)
    torn = lock_path.read_bytes()
    # The kernel released the dead process's lock: the workspace works as before.
    check_consistent(setup.repo)
    assert get_x(setup.root) == 10
    # Emptied before the new record is written: a kill leaves no record, never a torn one.
    assert torn == b""
    assert locks.recorded_state(lock_path) is None
