"""``e3 watch``: real subprocesses editing real files, waiting on what the command prints."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests_support import DEADLINE, E3_BIN, run_cli, wait_for

pytestmark = pytest.mark.timeout(180)

PACKAGE = """\
from east import East, IntegerType
import e3
from helper import K

x = e3.input("x", IntegerType, default=1)
t = e3.task("t", [x], East.function([IntegerType], IntegerType, lambda b, v: v + K))
pkg = e3.package("w", "1.0.0", t)
"""

SLOW = """\
from east import IntegerType
import e3

x = e3.input("x", IntegerType, default=1)
t = e3.custom_task("t", [x], IntegerType, "{command} {{inputs[0]}} {{output}}")
pkg = e3.package("slow", "1.0.0", t)
"""


class Watch:
    """``e3 watch …`` in the background; its stdout and stderr collected as they come."""

    def __init__(self, *args: str | os.PathLike[str]) -> None:
        self.proc = subprocess.Popen(
            [str(E3_BIN), "watch", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.text = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.text += line.decode("utf-8", "replace")

    def wait_count(self, needle: str, count: int, timeout: float = 60) -> None:
        """Until ``needle`` has been printed ``count`` times."""
        wait_for(
            lambda: self.text.count(needle) >= count,
            f"{count}x {needle!r} in:\n{self.text}",
            timeout=timeout,
        )

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(DEADLINE)
        self._reader.join(DEADLINE)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(DEADLINE)
        self._reader.join(DEADLINE)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def save(path: Path, text: str) -> None:
    """Save as editors do: a new file renamed over the old one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def value(repo: Path) -> str:
    r = run_cli("get", repo, "ws.tasks.t")
    assert r.code == 0, r.err
    return r.out.strip()


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    src = tmp_path / "src"
    src.mkdir()
    (src / "helper.py").write_text("K = 1\n")
    (src / "pkg.py").write_text(PACKAGE)
    return repo, src


def test_each_save_gives_a_new_result_and_mistakes_are_reported(
    project: tuple[Path, Path],
) -> None:
    repo, src = project
    w = Watch(repo, "ws", src / "pkg.py", "--start")
    try:
        w.wait_count("Watching for changes", 1)
        assert value(repo) == "2"
        # An imported module is watched too; an in-place write counts as a save.
        (src / "helper.py").write_text("K = 41\n")
        w.wait_count("Watching for changes", 2)
        assert value(repo) == "42"
        # A mistake: one line naming the file and line; the repository keeps the last version.
        save(src / "pkg.py", PACKAGE.replace("v + K", "v +"))
        w.wait_count("Watching for the next save", 1)
        assert f"Error: {src / 'pkg.py'}:6: SyntaxError" in w.text, w.text
        assert "Traceback" not in w.text
        assert value(repo) == "42"
        # The next good save recovers.
        save(src / "pkg.py", PACKAGE.replace("v + K", "v * K"))
        w.wait_count("Watching for changes", 3)
        assert value(repo) == "41"
        assert w.interrupt() == 130
        assert "Stopped." in w.text
    finally:
        w.kill()


def test_a_burst_of_saves_builds_once(project: tuple[Path, Path]) -> None:
    repo, src = project
    w = Watch(repo, "ws", src / "pkg.py", "--debounce", "300")
    try:
        w.wait_count("Watching for changes", 1)
        for k in range(2, 7):
            (src / "helper.py").write_text(f"K = {k}\n")
        w.wait_count("Watching for changes", 2)
        assert w.text.count("Deployed w@1.0.0") == 2, w.text  # the first version, then one
        assert run_cli("start", repo, "ws").code == 0
        assert value(repo) == "7"
    finally:
        w.kill()


def test_abort_on_change_cancels_a_long_task(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    pkg = tmp_path / "slow.py"
    pkg.write_text(SLOW.format(command="sleep 60; cp"))
    w = Watch(repo, "ws", pkg, "--start", "--abort-on-change")
    try:
        w.wait_count("[START] t", 1)
        t0 = time.monotonic()
        save(pkg, SLOW.format(command="cp"))
        w.wait_count("Watching for changes", 1, timeout=30)
        assert time.monotonic() - t0 < 30
        assert "cancelling the running dataflow" in w.text
        assert "Aborted." in w.text
        assert value(repo) == "1"
    finally:
        w.kill()


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    r = run_cli("watch", tmp_path, "ws", tmp_path / "nope.py")
    assert r.code == 2 and r.err.startswith("Error: file not found"), r.err


VERSIONED = """\
from east import IntegerType
import e3
from helper import K

x = e3.input("x", IntegerType, default=1)
pkg = e3.package("v", f"1.0.{K}", x)
"""


def test_an_edit_within_the_second_of_the_last_build_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python reuses a .pyc whose source has the same size and modification second:
    # "K = 1" → "K = 9" saved within that second was built from the old code.
    from e3.cli.watch import build

    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # the cache must be written
    helper, pkg = tmp_path / "helper.py", tmp_path / "pkg.py"
    helper.write_text("K = 1\n")
    pkg.write_text(VERSIONED)
    workdir = tmp_path / "work"
    workdir.mkdir()
    first = build(pkg, workdir)
    assert first.version == "1.0.1" and helper.resolve() in first.sources
    stat = helper.stat()
    helper.write_text("K = 9\n")
    os.utime(helper, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same second, the same size
    assert build(pkg, workdir, first.sources).version == "1.0.9"
