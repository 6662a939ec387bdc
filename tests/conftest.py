"""Shared fixtures: isolated environment, real repositories on temp dirs, CLI runners."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e3.repository import Repository, create_repository

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
E3_BIN = Path(sys.executable).with_name("e3")


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test sees the developer's E3_* settings or home directory."""
    for key in list(os.environ):
        if key.startswith("E3_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("E3_HOME", str(tmp_path_factory.mktemp("e3home")))


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    """A fresh, empty repository."""
    r, _ = create_repository(tmp_path / "repo")
    return r


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


@pytest.fixture
def cli() -> type[CliResult]:
    """Returns :func:`run_cli` (as a fixture for discoverability)."""
    return run_cli  # type: ignore[return-value]


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


@pytest.fixture
def build_example(tmp_path: Path) -> Iterator[object]:
    """Export an example package (``examples/<name>.py``) to a zip; returns the zip path."""
    from e3.sdk.loader import load_one
    from e3.sdk.package import export

    def build(name: str, target: str | None = None) -> Path:
        pkg = load_one(str(EXAMPLES / f"{name}.py") + (f":{target}" if target else ""))
        out = tmp_path / f"{pkg.name}-{pkg.version}.zip"
        export(pkg, out)
        return out

    return build
