"""``e3 repo verify``: check that a repository is whole, without changing it.

What is checked is what e3 promises after any crash or kill:

* every file under ``objects/`` is named by the SHA-256 of its bytes (staging
  ``.partial`` files left by killed writers are counted, not reported: ``gc``
  removes them; so are objects torn by a power cut that nothing refers to, which
  a run or import writes before the sync that precedes any reference to them);
* every package ref holds a hash whose object, and everything it refers to
  (task objects, command IR, initial values), exists and decodes;
* every workspace state decodes and its pinned package is whole; every dataset
  ref decodes and a value ref names an existing object;
* a successful execution's output names an existing object (an attempt cut off
  while its files were being created, which readers treat as absent, is
  counted as incomplete, not as a problem);
* every dataflow run record decodes.

A problem is a one-line description naming the file; the report lists them all
rather than stopping at the first, so one run tells the whole story.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from e3.base import atomic
from e3.base.names import is_hash
from e3.core import gc, package_check, packages, workspaces
from e3.errors import E3Error
from e3.model.results import VerifyReport
from e3.records import dataflow as run_record
from e3.records import dataset_ref, execution
from e3.store.objects import OBJECT_SUFFIX
from e3.store.repository import RepoStore

_CHUNK = 1 << 20
#: How a problem names a damaged or missing object (its full hash).
_DAMAGED = re.compile(r"(?:object|names missing object) ([0-9a-f]{64})\b")


@dataclass
class VerifyCache:
    """What earlier checks of the same repository established, to re-check only changes.

    An object file whose (inode, size, mtime) is unchanged since it hashed correctly
    is not hashed again; a package closure already validated is only re-checked for
    the presence of its objects. For tools that verify after every step (the
    fuzzer); ``e3 repo verify`` always checks everything.
    """

    objects: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    closures: dict[str, set[str]] = field(default_factory=dict)
    #: successful executions already checked: directory -> (status file, output hash)
    executions: dict[str, tuple[tuple[int, int, int], str]] = field(default_factory=dict)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(repo: RepoStore, cache: VerifyCache | None = None) -> VerifyReport:
    """Check every object, ref, record and package of ``repo`` (read only)."""
    problems: list[str] = []
    cache = cache or VerifyCache()
    objects, torn = _check_objects(repo, problems, cache)
    checked: set[str] = set()
    pkgs = _check_packages(repo, problems, checked, cache)
    wss, refs = _check_workspaces(repo, problems, checked, cache)
    execs, incomplete = _check_executions(repo, problems, cache)
    runs = _check_runs(repo, problems)
    partials = sum(1 for _ in repo.objects.partial_files()) + torn
    damaged = sorted({m.group(1) for p in problems if (m := _DAMAGED.search(p))})
    return VerifyReport(
        objects, pkgs, wss, refs, execs, incomplete, runs, partials, problems, damaged
    )


def _rel(repo: RepoStore, path: Path | str) -> str:
    return os.path.relpath(path, repo.root)


def _check_objects(repo: RepoStore, problems: list[str], cache: VerifyCache) -> tuple[int, int]:
    """Objects checked, and how many are torn but unreferenced (safe to drop)."""
    root = repo.root / "objects"
    count = 0
    mismatched: list[tuple[str, str]] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if name.endswith(atomic.PARTIAL_SUFFIX):
                continue
            rel = path.relative_to(root)
            h = "".join(rel.parts).removesuffix(OBJECT_SUFFIX)
            if len(rel.parts) != 2 or not name.endswith(OBJECT_SUFFIX) or not is_hash(h):
                problems.append(f"{_rel(repo, path)}: not an object file")
                continue
            count += 1
            try:
                st = path.stat()
                key = (st.st_ino, st.st_size, st.st_mtime_ns)
                if cache.objects.get(h) == key:
                    continue
                actual = _sha256_file(path)
            except OSError as exc:
                problems.append(f"{_rel(repo, path)}: unreadable ({exc.strerror})")
                continue
            if actual != h:
                problem = f"{_rel(repo, path)}: content hashes to {actual[:12]}…"
                mismatched.append((h, f"{problem} (object {h} is damaged)"))
            else:
                cache.objects[h] = key
    if not mismatched:
        return count, 0
    try:
        live: set[str] = set(gc.mark(repo))
    except E3Error:
        live = {h for h, _ in mismatched}  # cannot tell: every one is a problem
    problems.extend(problem for h, problem in mismatched if h in live)
    return count, sum(1 for h, _ in mismatched if h not in live)


def _closure_problem(repo: RepoStore, pkg_hash: str, cache: VerifyCache) -> str | None:
    """Why a package is not whole (``None`` if it is)."""
    known = cache.closures.get(pkg_hash)
    if known is not None:
        missing = [h for h in known if not repo.objects.has(h)]
        return f"object {missing[0][:12]}… is missing" if missing else None
    try:
        _pkg, closure = package_check.package_closure(repo, pkg_hash)
    except E3Error as exc:
        return exc.message
    cache.closures[pkg_hash] = set(closure)
    return None


def _check_packages(
    repo: RepoStore, problems: list[str], checked: set[str], cache: VerifyCache
) -> int:
    try:
        infos = packages.list_packages(repo)
    except E3Error as exc:
        problems.append(f"packages/: {exc.message}")
        return 0
    for info in infos:
        checked.add(info.hash)
        problem = _closure_problem(repo, info.hash, cache)
        if problem is not None:
            problems.append(f"package {info.ref}: {problem}")
    return len(infos)


def _check_workspaces(
    repo: RepoStore, problems: list[str], checked: set[str], cache: VerifyCache
) -> tuple[int, int]:
    try:
        infos = workspaces.list_workspaces(repo)
    except E3Error as exc:
        problems.append(f"workspaces/: {exc.message}")
        return 0, 0
    refs = 0
    for ws in infos:
        try:
            state = workspaces.read_state(repo, ws.name)
        except E3Error as exc:
            problems.append(f"workspace {ws.name}: {exc.message}")
            continue
        if state is not None and state.package_hash not in checked:
            checked.add(state.package_hash)
            problem = _closure_problem(repo, state.package_hash, cache)
            if problem is not None:
                problems.append(f"workspace {ws.name}: deployed package: {problem}")
        for data_dir in workspaces.trusted_data_dirs(repo, ws.name):
            for _path, file in workspaces.iter_ref_files(data_dir):
                refs += 1
                raw = atomic.read_bytes(file)
                if not raw:
                    continue  # unassigned (an output published without its own fsync)
                try:
                    ref = dataset_ref.decode(raw)
                except E3Error as exc:
                    problems.append(f"{_rel(repo, file)}: {exc.message}")
                    continue
                if ref.kind == "value" and ref.hash and not repo.objects.has(ref.hash):
                    problems.append(f"{_rel(repo, file)}: names missing object {ref.hash}")
    return len(infos), refs


def _check_executions(repo: RepoStore, problems: list[str], cache: VerifyCache) -> tuple[int, int]:
    from e3.core import executions

    count = incomplete = 0
    for dirpath, _dirs, files in os.walk(repo.executions_dir):
        if executions.STATUS_FILE not in files:
            continue
        count += 1
        d = Path(dirpath)
        known = cache.executions.get(dirpath)
        if known is not None:
            try:
                st = os.stat(d / executions.STATUS_FILE)
            except OSError:
                st = None
            if st is not None and known[0] == (st.st_ino, st.st_size, st.st_mtime_ns):
                if not repo.objects.has(known[1]):
                    problems.append(
                        f"{_rel(repo, d / executions.OUTPUT_FILE)}: names missing object {known[1]}"
                    )
                continue
        raw = atomic.read_bytes(d / executions.STATUS_FILE)
        try:
            status = execution.decode(raw) if raw else None
        except E3Error:
            status = None
        if status is None:
            incomplete += 1
            continue
        if status.state != "success":
            continue
        out = atomic.read_bytes(d / executions.OUTPUT_FILE)
        h = out.decode("utf-8", "replace").strip() if out else ""
        if not is_hash(h):
            incomplete += 1
        elif repo.objects.has(h):
            st = os.stat(d / executions.STATUS_FILE)
            cache.executions[dirpath] = ((st.st_ino, st.st_size, st.st_mtime_ns), h)
        else:
            problems.append(f"{_rel(repo, d / executions.OUTPUT_FILE)}: names missing object {h}")
    return count, incomplete


def _check_runs(repo: RepoStore, problems: list[str]) -> int:
    root = repo.root / "dataflows"
    count = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not name.endswith(".beast2"):
                continue
            count += 1
            path = Path(dirpath) / name
            raw = atomic.read_bytes(path)
            if not raw:
                problems.append(f"{_rel(repo, path)}: empty run record")
                continue
            try:
                run_record.decode(raw)
            except E3Error as exc:
                problems.append(f"{_rel(repo, path)}: {exc.message}")
    return count
