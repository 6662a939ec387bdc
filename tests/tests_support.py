"""Helpers shared by test modules (importable because tests/ is on sys.path via rootdir)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from east import East, IntegerType, StringType

import e3
from e3.sdk import Package

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def versioned_hello(version: str, *, default: int = 10, name: str = "hello") -> Package:
    """The hello package at any version, with a chosen default for x."""
    x = e3.input("x", IntegerType, default=default)
    double = e3.task("double", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 2))
    return e3.package(name, version, double)


E3_BIN = Path(sys.executable).with_name("e3")


@dataclass
class CliResult:
    """Outcome of one CLI invocation."""

    code: int
    out: str
    err: str
    raw: bytes

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


class _Capture(io.TextIOWrapper):
    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)

    def value(self) -> bytes:
        self.flush()
        return self.buffer.getvalue()  # type: ignore[attr-defined]


def run_cli(*args: str | os.PathLike[str]) -> CliResult:
    """Run ``e3 args…`` in this process (fast; same code path as the console script)."""
    from e3.cli import main

    out, err = _Capture(), _Capture()
    code = main([str(a) for a in args], stdout=out, stderr=err)
    raw = out.value()
    return CliResult(
        code, raw.decode("utf-8", "replace"), err.value().decode("utf-8", "replace"), raw
    )


def run_e3(
    *args: str | os.PathLike[str],
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run the installed ``e3`` console script as a real subprocess."""
    proc = subprocess.run(
        [str(E3_BIN), *map(str, args)],
        input=input,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return CliResult(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        proc.stdout,
    )


def tree_digest(root: Path) -> str:
    """Hash of every file's relative path, mode and bytes, and every directory's path, under
    ``root`` (symlinks by target): equal digests mean the tree is byte-for-byte unchanged."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(dirpath, root)
        h.update(b"D" + rel.encode() + b"\0")
        for f in sorted(files):
            p = Path(dirpath) / f
            h.update(b"F" + os.path.join(rel, f).encode() + b"\0")
            if p.is_symlink():
                h.update(b"L" + os.readlink(p).encode())
            else:
                h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


# ── packages used by the dataflow tests ─────────────────────────────────────


def _boom(b, v):
    b.error(East.value("boom", StringType))
    return v


def failing_package() -> Package:
    """ok (x+1); bad fails; after depends on bad; other (x*2) -> later (+1), independent."""
    x = e3.input("x", IntegerType, default=1)
    ok = e3.task("ok", [x], East.function([IntegerType], IntegerType, lambda b, v: v + 1))
    bad = e3.task("bad", [x], East.function([IntegerType], IntegerType, _boom))
    after = e3.task("after", [bad], East.function([IntegerType], IntegerType, lambda b, v: v))
    other = e3.task("other", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 2))
    later = e3.task("later", [other], East.function([IntegerType], IntegerType, lambda b, v: v + 1))
    return e3.package("failing", "1.0.0", ok, after, later)


def shell_package(command: str, *, name: str = "shellpkg", version: str = "1.0.0") -> Package:
    """One custom task ``t`` running ``command`` on input ``x`` (an Integer, default 5)."""
    x = e3.input("x", IntegerType, default=5)
    task = e3.custom_task("t", [x], IntegerType, command)
    return e3.package(name, version, task)


def export_to(pkg: Package, directory: Path) -> Path:
    """Export a package definition to ``directory``; returns the zip."""
    from e3.sdk import export

    out = directory / f"{pkg.name}-{pkg.version}.zip"
    export(pkg, out)
    return out
