"""``e3 start`` on a terminal: the live view, driven under a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests_support import DEADLINE, E3_BIN, export_to, failing_package, run_cli, shell_package


def _setup(tmp_path: Path, pkg: object, ws: str = "w") -> Path:
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    zip_path = export_to(pkg, tmp_path)  # type: ignore[arg-type]
    assert run_cli("package", "import", repo, zip_path).code == 0
    r = run_cli("workspace", "deploy", repo, ws, pkg.name)  # type: ignore[attr-defined]
    assert r.code == 0, r.err
    return repo


def run_on_terminal(*args: str | os.PathLike[str]) -> tuple[int, str]:
    """Run ``e3 args…`` with a pseudo-terminal (100x30) as stdout and stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [str(E3_BIN), *map(str, args)],
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other side is closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_a_running_task_is_named_with_a_ticking_elapsed_time(tmp_path: Path) -> None:
    repo = _setup(tmp_path, shell_package("sleep 2; cp {inputs[0]} {output}"))
    code, screen = run_on_terminal("start", repo, "w")
    assert code == 0, screen
    # The block names the running task with its elapsed time, redrawn while it runs.
    elapsed = [float(v) for v in re.findall(r"▸ t  (\d+\.\d)s", screen)]
    assert len(set(elapsed)) >= 4, screen
    assert max(elapsed) >= 1.0 and elapsed == sorted(elapsed), elapsed
    assert "[0/1] running 1" in screen
    # The task's line scrolls above the block, then the summary; no [START] on a terminal.
    assert re.search(r"\[DONE\] t \[\d+ms\]", screen), screen
    assert "[START]" not in screen
    assert "Summary:" in screen and "Executed: 1" in screen


def test_a_failed_east_task_shows_its_error_live_and_in_the_summary(tmp_path: Path) -> None:
    repo = _setup(tmp_path, failing_package())
    code, screen = run_on_terminal("start", repo, "w")
    assert code == 1, screen
    live, _, summary = screen.partition("Summary:")
    assert re.search(r"\[FAIL\] bad \[\d+ms\] \(exit code 1\)\r?\n    \| Error: boom", live), live
    assert "Failed tasks:" in summary and "bad: exit code 1" in summary
    assert "| Error: boom" in summary


def test_piped_output_stays_plain_lines(tmp_path: Path) -> None:
    repo = _setup(tmp_path, failing_package())
    proc = subprocess.run([str(E3_BIN), "start", repo, "w"], capture_output=True, timeout=DEADLINE)
    out = proc.stdout.decode()
    assert "\x1b[" not in out and "▸" not in out
    assert "  [START] bad" in out and "  [FAIL] bad" in out
