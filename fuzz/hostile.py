"""Hostile-input fuzzing of every reader of user data.

Targets (what the CLI and the API apply to bytes a user or a client sends):

* ``beast2``: the Beast2 header reader, decoding against a declared type, and the
  canonicalisation ``set`` and task outputs go through;
* ``json`` and ``east``: the text readers of ``e3 set`` / ``convert``, for many types;
* ``api``: typed API request bodies, decoded as the server decodes them;
* ``paths``: dataset paths (``ws.a.`b c```) and every name validator;
* ``zip``: the package importer, on mutated package zips, into a real repository
  whose bytes must not change when the import is refused;
* ``bombs``: decompression bombs (:mod:`fuzz.bombs`): Beast2 values whose deflate frames
  inflate far past the decoded-size limit (dataset values, typed API bodies), forged
  frame sizes, and package zips whose entries do (a huge default object, many large
  ``data/`` entries, a tree nested 1,000 deep), plain and mutated. Each must be refused
  (or accepted if within the limits) quickly, without the worker's peak memory rising
  past :data:`BOMB_MEMORY`, and a refused import must leave the repository unchanged.

Inputs are mutations (bit flips, interesting bytes, inserted, deleted, repeated and
spliced ranges, huge LEB128 lengths, truncations) of valid seeds: encodings of random
values of random East types. Each target runs in worker processes; case ``i`` of seed
``s`` is a pure function of ``(s, i)``, so the parent can name the input that crashed a
worker (a signal, say a segfault in native code) or stalled it (no progress for
``HANG_SECONDS``). A case passes if the reader returns or raises an :class:`E3Error`;
any other exception is a finding.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: A worker that completes no case for this long is reported as hung.
HANG_SECONDS = 20.0


@dataclass
class Finding:
    """An input a reader did not handle (crash, hang or unexpected exception)."""

    target: str
    seed: int
    case: int
    kind: str
    detail: str
    data: bytes = b""


@dataclass
class HostileStats:
    """Inputs tried per target, and what they found."""

    inputs: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    #: Per target, counts (and ``max_`` maxima) its cases reported (``bombs``: by kind).
    details: dict[str, dict[str, float]] = field(default_factory=dict)

    def note(self, target: str, values: dict[str, float]) -> None:
        """Add what one case reported: counts add up, ``max_`` values keep the largest."""
        into = self.details.setdefault(target, {})
        for key, value in values.items():
            if key.startswith("max_"):
                into[key] = max(into.get(key, 0.0), value)
            else:
                into[key] = into.get(key, 0.0) + value


# ── seeds: random East types and values ─────────────────────────────────────


def random_type(rng: random.Random, depth: int = 0) -> Any:
    from east import (
        ArrayType,
        BlobType,
        BooleanType,
        DateTimeType,
        DictType,
        FloatType,
        IntegerType,
        NullType,
        OptionType,
        SetType,
        StringType,
        StructType,
        VariantType,
    )

    leaves = [IntegerType, FloatType, StringType, BooleanType, NullType, BlobType, DateTimeType]
    if depth > 2 or rng.random() < 0.4:
        return rng.choice(leaves)
    kind = rng.choice(["array", "dict", "struct", "variant", "option", "set"])
    if kind == "array":
        return ArrayType(random_type(rng, depth + 1))
    if kind == "set":
        return SetType(rng.choice([IntegerType, StringType]))
    if kind == "dict":
        return DictType(rng.choice([IntegerType, StringType]), random_type(rng, depth + 1))
    if kind == "option":
        return OptionType(random_type(rng, depth + 1))
    names = sorted({rng.choice("abcdefgh") + str(i) for i in range(rng.randint(1, 4))})
    fields = [(n, random_type(rng, depth + 1)) for n in names]
    return StructType(fields) if kind == "struct" else VariantType(fields)


def random_value(t: Any, rng: random.Random) -> Any:
    from datetime import UTC, datetime, timedelta

    from e3.codec.types import none, some, variant

    kind = str(t.type)
    if kind == "Integer":
        return rng.choice([0, 1, -1, 2**62, -(2**63), rng.randint(-1000, 1000)])
    if kind == "Float":
        return rng.choice([0.0, -0.0, 1.5, float("inf"), float("nan"), rng.random()])
    if kind == "String":
        return rng.choice(["", "a", "é数", "x" * rng.randint(0, 50)])
    if kind == "Boolean":
        return rng.random() < 0.5
    if kind == "Null":
        return None
    if kind == "Blob":
        return rng.randbytes(rng.randint(0, 20))
    if kind == "DateTime":
        return datetime(2020, 1, 1, tzinfo=UTC) + timedelta(milliseconds=rng.randint(0, 10**10))
    if kind == "Array":
        return [random_value(t.value, rng) for _ in range(rng.randint(0, 4))]
    if kind == "Set":
        return {random_value(t.value, rng) for _ in range(rng.randint(0, 4))}
    if kind == "Dict":
        return {
            random_value(t.value["key"], rng): random_value(t.value["value"], rng)
            for _ in range(rng.randint(0, 3))
        }
    if kind == "Option":
        return none if rng.random() < 0.3 else some(random_value(t.value, rng))
    if kind == "Struct":
        return {str(f["name"]): random_value(f["type"], rng) for f in t.value}
    if kind == "Variant":
        f = rng.choice(list(t.value))
        return variant(str(f["name"]), random_value(f["type"], rng))
    raise AssertionError(kind)


def _seeds(seed: int, count: int, encode: Callable[[Any, Any], bytes]) -> list[tuple[Any, bytes]]:
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        t = random_type(rng)
        try:
            out.append((t, encode(random_value(t, rng), t)))
        except Exception:
            continue
    return out


# ── mutation ────────────────────────────────────────────────────────────────

_INTERESTING = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x0A, 0x05, 0x89]


def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    """One to four random mutations of ``data``."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(b)
        if op == 0 and n:  # flip a bit
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # an interesting byte
            b[rng.randrange(n)] = rng.choice(_INTERESTING)
        elif op == 2:  # insert random bytes
            i = rng.randint(0, n)
            b[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and n:  # delete a range
            i = rng.randrange(n)
            del b[i : i + rng.randint(1, 16)]
        elif op == 4 and n:  # repeat a range
            i = rng.randrange(n)
            chunk = b[i : i + rng.randint(1, 16)]
            b[i:i] = chunk * rng.randint(1, 8)
        elif op == 5 and n:  # truncate
            del b[rng.randrange(n) :]
        elif op == 6 and corpus:  # splice with another seed
            other = rng.choice(corpus)
            i, j = rng.randint(0, n), rng.randint(0, len(other))
            b = b[:i] + bytearray(other[j:])
        elif op == 7 and n:  # a huge LEB128 length at a random place
            i = rng.randrange(n)
            huge = rng.choice([b"\xff\xff\xff\xff\x0f", b"\x80\x80\x80\x80\x80\x80\x80\x80\x01"])
            b[i : i + 1] = huge
        elif n:  # swap two bytes
            i, j = rng.randrange(n), rng.randrange(n)
            b[i], b[j] = b[j], b[i]
    return bytes(b)


# ── targets: each maps (seed, case) -> an input, and runs the reader on it ───


class Target:
    """A reader under test; ``corpus`` holds the valid inputs that cases mutate."""

    name = ""
    corpus: list[bytes]

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def input(self, case: int) -> bytes:
        """Case ``case``: a mutation of a corpus entry, a pure function of (seed, case)."""
        rng = random.Random(self.seed * 1_000_003 + case)
        return mutate(rng.choice(self.corpus), rng, self.corpus)

    def run(self, data: bytes) -> dict[str, float] | None:
        """Read ``data`` as the target does; optionally, numbers to add to the report."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources."""


class Beast2Target(Target):
    name = "beast2"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        from e3.codec import beast2

        self.seeds = _seeds(seed, 300, beast2.encode)
        self.corpus = [d for _, d in self.seeds]

    def run(self, data: bytes) -> None:
        from e3.codec import beast2
        from e3.errors import E3Error

        rng = random.Random(len(data) * 31 + (data[-1] if data else 0))
        declared, _ = rng.choice(self.seeds)
        with contextlib.suppress(E3Error):
            beast2.read_type(data)
        with contextlib.suppress(E3Error):
            beast2.decode(data, declared, trusted=False)
        with contextlib.suppress(E3Error):
            beast2.canonicalize(data, declared)


class TextTarget(Target):
    """The JSON or ``.east`` reader for a type."""

    def __init__(self, seed: int, fmt: str) -> None:
        super().__init__(seed)
        from e3.codec import text

        self.fmt = fmt
        self.name = fmt
        enc = text.to_json if fmt == "json" else text.to_east

        def encode(value: Any, t: Any) -> bytes:
            return str(enc(value, t)).encode()

        self.seeds = _seeds(seed, 300, encode)
        self.corpus = [d for _, d in self.seeds]

    def run(self, data: bytes) -> None:
        from e3.codec.formats import read_value
        from e3.errors import E3Error

        rng = random.Random(len(data))
        declared, _ = rng.choice(self.seeds)
        with contextlib.suppress(E3Error):
            read_value(data, self.fmt, declared)  # type: ignore[arg-type]


class ApiTarget(Target):
    """Typed API request bodies, decoded as the server decodes them."""

    name = "api"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        from e3.codec import beast2
        from e3.model import bodies as api_types
        from e3.model import retention, runs, wire

        self.types: list[Any] = [
            retention.GcPolicy,
            api_types.ImportRequest,
            api_types.WorkspaceRequest,
            api_types.DeployRequest,
            api_types.WorkspaceExportRequest,
            api_types.UploadRequest,
            api_types.TaskRunRequest,
            runs.StartOptions,
        ]
        samples = [
            retention.GcPolicy(True, 5.0),
            api_types.ImportRequest(10, False),
            api_types.WorkspaceRequest("ws"),
            api_types.DeployRequest("pkg@1.0.0"),
            api_types.WorkspaceExportRequest("n", "1.0"),
            api_types.UploadRequest("a" * 64, 3),
            api_types.TaskRunRequest(
                "p", "t", [api_types.RunInput("a.east", "x")], True, "warm", 1.0
            ),
            runs.StartOptions(("a*",), 4, True, False, None, "warm"),
        ]
        self.corpus = [
            beast2.encode(wire.to_east(v, t), wire.east_type_of(t))
            for v, t in zip(samples, self.types, strict=True)
        ]

    def run(self, data: bytes) -> None:
        from e3.codec import beast2
        from e3.errors import E3Error
        from e3.model import wire

        for t in self.types:
            try:
                value = beast2.decode(data, wire.east_type_of(t), trusted=False)
            except E3Error:
                continue
            # The server turns these into a 400 decode_error (see e3.server.app.typed_body).
            with contextlib.suppress(KeyError, TypeError, ValueError):
                wire.from_east(value, t)


class PathsTarget(Target):
    """Dataset paths and name validators."""

    name = "paths"

    _seeds: tuple[str, ...] = (
        "ws.a.b",
        "ws.`a b`.c",
        "ws",
        "w-s.inputs.`x``y`",
        "ws.数据.é",
        "@s/p@1.0",
        "a",
    )

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.corpus = [s.encode() for s in self._seeds]

    def run(self, data: bytes) -> None:
        from e3.base import names, paths
        from e3.errors import E3Error

        text = data.decode("utf-8", "surrogateescape")
        for fn in (
            paths.parse_workspace_path,
            paths.parse_keypath,
            names.check_workspace_name,
            names.check_package_name,
            names.check_version,
            names.check_task_name,
            names.check_field_name,
            names.parse_package_spec,
        ):
            with contextlib.suppress(E3Error):
                fn(text)  # type: ignore[operator]
        try:
            path = paths.parse_keypath("." + text) if text else ()
        except E3Error:
            return
        rel = paths.ref_relpath(path) if path else ""
        if rel and (rel.startswith("/") or any(c in ("", ".", "..") for c in rel.split("/"))):
            raise AssertionError(f"ref file path escapes its directory: {rel!r}")
        if rel and paths.path_from_ref_relpath(rel) != path:
            raise AssertionError(f"ref file path does not map back: {path!r} -> {rel!r}")


class ZipTarget(Target):
    """The package importer, on mutated zips; a refused import changes nothing."""

    name = "zip"

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        import zipfile

        from east import IntegerType

        import e3
        from e3.sdk import export
        from e3.store.repository import create_repository

        self.tmp = Path(tempfile.mkdtemp(prefix="e3-zipfuzz-"))
        x = e3.input("x", IntegerType, default=1)
        t = e3.custom_task("t", [x], IntegerType, "cp {inputs[0]} {output}")
        export(e3.package("z", "1.0.0", t), self.tmp / "z.zip")
        self.corpus = [(self.tmp / "z.zip").read_bytes()]
        with zipfile.ZipFile(self.tmp / "z.zip") as zf:
            self.members = [zf.read(n) for n in zf.namelist()]
        self.repo, _ = create_repository(self.tmp / "repo", durable=False)
        self.case_file = self.tmp / "case.zip"

    def input(self, case: int) -> bytes:
        rng = random.Random(self.seed * 1_000_003 + case)
        return mutate(self.corpus[0], rng, self.corpus + self.members)

    def run(self, data: bytes) -> None:
        from e3.core import package_zip, packages
        from e3.errors import E3Error

        self.case_file.write_bytes(data)
        before = _listing(self.repo.root)
        try:
            package_zip.import_package(self.repo, self.case_file)
        except E3Error:
            after = _listing(self.repo.root)
            if after != before:
                raise AssertionError("a refused import changed the repository") from None
            return
        finally:
            # Entries like ../x would land next to the repository: nothing may.
            beside = sorted(os.listdir(self.tmp))
            if beside != ["case.zip", "repo", "z.zip"]:
                raise AssertionError(f"the import wrote outside the repository: {beside}")
        # Accepted (a harmless mutation): forget it so the next case starts clean.
        packages.remove_package(self.repo, "z@1.0.0")
        shutil.rmtree(self.repo.root / "objects")
        (self.repo.root / "objects").mkdir()

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _listing(root: Path) -> list[tuple[str, int]]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if name.endswith(".lock"):
                continue
            out.append((str(p.relative_to(root)), p.stat().st_size))
    return sorted(out)


def make_target(name: str, seed: int) -> Target:
    if name == "beast2":
        return Beast2Target(seed)
    if name in ("json", "east"):
        return TextTarget(seed, name)
    if name == "api":
        return ApiTarget(seed)
    if name == "paths":
        return PathsTarget(seed)
    if name == "zip":
        return ZipTarget(seed)
    if name == "bombs":
        from fuzz.bomb_target import BombTarget

        return BombTarget(seed)
    raise ValueError(name)


TARGETS = ["beast2", "json", "east", "api", "paths", "zip", "bombs"]


# ── workers ─────────────────────────────────────────────────────────────────


def _worker(name: str, seed: int, start: int, stop: int, progress: Any, out: Any) -> None:
    """Run cases ``start..stop``; ``progress`` holds the case about to run."""
    os.environ.pop("E3_DEBUG", None)
    target = make_target(name, seed)
    try:
        for case in range(start, stop):
            progress.value = case
            data = target.input(case)
            try:
                report = target.run(data)
                if report:
                    out.put(("stat", case, report))
            except Exception as exc:
                out.put(
                    (
                        "exception",
                        case,
                        f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}",
                    )
                )
        progress.value = stop
    finally:
        target.close()


def fuzz_target(
    name: str, seed: int, inputs: int, *, workers: int = 2, stats: HostileStats
) -> None:
    """Run ``inputs`` cases of one target over ``workers`` processes."""
    ctx = mp.get_context("fork")
    t0 = time.monotonic()
    per = -(-inputs // workers)
    jobs = []
    for w in range(workers):
        start, stop = w * per, min(inputs, (w + 1) * per)
        if start >= stop:
            continue
        progress = ctx.Value("q", start)
        out = ctx.Queue()
        proc = ctx.Process(target=_worker, args=(name, seed, start, stop, progress, out))
        proc.start()
        jobs.append((proc, progress, out, start, stop))
    while jobs:
        still = []
        for proc, progress, out, start, stop in jobs:
            _drain(out, name, seed, stats)
            proc.join(0.2)
            if proc.is_alive():
                last = progress.value
                seen = getattr(proc, "_e3_seen", (last, time.monotonic()))
                if seen[0] != last:
                    seen = (last, time.monotonic())
                proc._e3_seen = seen  # type: ignore[attr-defined]
                if time.monotonic() - seen[1] > HANG_SECONDS:
                    proc.kill()
                    proc.join()
                    data = make_target(name, seed).input(last)
                    stats.findings.append(Finding(name, seed, last, "hang", "", data))
                    _restart(ctx, name, seed, last + 1, stop, still, stats)
                    continue
                still.append((proc, progress, out, start, stop))
            elif proc.exitcode != 0:
                last = progress.value
                data = make_target(name, seed).input(last)
                stats.findings.append(
                    Finding(name, seed, last, "crash", f"worker died: exit {proc.exitcode}", data)
                )
                _restart(ctx, name, seed, last + 1, stop, still, stats)
            else:
                _drain(out, name, seed, stats)
        jobs = still
    stats.inputs[name] = stats.inputs.get(name, 0) + inputs
    stats.seconds[name] = stats.seconds.get(name, 0.0) + time.monotonic() - t0


def _drain(out: Any, name: str, seed: int, stats: HostileStats) -> None:
    """Take what a worker reported: findings, and numbers for the report."""
    while not out.empty():
        kind, case, detail = out.get()
        if kind == "stat":
            stats.note(name, detail)
        else:
            stats.findings.append(Finding(name, seed, case, kind, detail))


def _restart(
    ctx: Any, name: str, seed: int, start: int, stop: int, jobs: list[Any], stats: HostileStats
) -> None:
    if start >= stop:
        return
    progress = ctx.Value("q", start)
    out = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(name, seed, start, stop, progress, out))
    proc.start()
    jobs.append((proc, progress, out, start, stop))


def run_hostile(seed: int, budget: dict[str, int], *, workers: int = 2) -> HostileStats:
    """Fuzz every target with its budget of inputs."""
    stats = HostileStats()
    for name, inputs in budget.items():
        fuzz_target(name, seed, inputs, workers=workers, stats=stats)
    return stats
