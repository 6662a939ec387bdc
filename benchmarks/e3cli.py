"""e3 driven through its command line only: package files, fresh workspaces, watched starts.

Everything here goes through the ``e3`` executable (``package build``, ``repo
create``, ``package import``, ``workspace deploy``, ``start``), as a user would.
:class:`Watched` runs one process and observes it from outside: the arrival time
of each line it prints, its peak resident memory (``VmHWM`` sampled from
``/proc/<pid>/status``), its CPU time (``/proc/<pid>/stat``), and the rusage
``wait4`` reports for it and its waited-for children.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import E3, ROOT, e3, env, wall

_REPO_NUMBERS = itertools.count()

#: Clock ticks per second of /proc/<pid>/stat's utime and stime.
CLK_TCK = os.sysconf("SC_CLK_TCK")


def fanout_source(shape: str, n: int) -> str:
    """A package file defining ``pkg``: ``examples/fanout.py``'s ``make(n, shape)``."""
    return (
        "import sys\n\n"
        f"sys.path.insert(0, {str(ROOT / 'examples')!r})\n"
        "import fanout  # noqa: E402\n\n"
        f"pkg = fanout.make({n}, {shape!r})\n"
    )


def build_package(tmp: Path, name: str, source: str) -> Path:
    """Write ``source`` (a file defining ``pkg``) and ``e3 package build`` it; the zip's path."""
    src = tmp / f"{name}.py"
    src.write_text(source)
    out = tmp / f"{name}.zip"
    e3("package", "build", f"{src}:pkg", "-o", out)
    return out


def fresh_workspace(tmp: Path, zip_path: Path, package: str) -> Path:
    """A new repository with ``zip_path`` imported and deployed as workspace ``ws``."""
    repo = tmp / f"repo-{package}-{next(_REPO_NUMBERS)}"
    e3("repo", "create", repo)
    e3("package", "import", repo, zip_path)
    e3("workspace", "deploy", repo, "ws", package)
    return repo


def start_argv(repo: Path, *extra: str) -> list[str]:
    """``e3 start <repo> ws …``."""
    return [E3, "start", str(repo), "ws", *extra]


def timed_start(repo: Path, *extra: str) -> float:
    """Wall time of ``e3 start`` as a fresh process.

    Untimed before it: ``sync``, so the run does not wait for what setting up
    left dirty (as ``benchmarks/dataflow.py`` does).
    """
    os.sync()
    return wall(start_argv(repo, *extra))


def executed_count(stdout: str) -> int | None:
    """``Executed: N`` from ``e3 start``'s summary."""
    m = re.search(r"^\s*Executed:\s*(\d+)", stdout, re.MULTILINE)
    return int(m.group(1)) if m else None


@dataclass
class Outcome:
    """What :class:`Watched` saw of one process."""

    wall: float
    returncode: int
    stdout: str
    stderr: str
    #: Peak resident set of the process itself (kB), from sampling ``VmHWM``.
    hwm_kb: int
    #: ``ru_maxrss`` from ``wait4`` (kB): the largest of the process and its waited-for children.
    tree_maxrss_kb: int
    #: ``(seconds since spawn, parsed JSON or None, line)`` for each stdout line.
    lines: list[tuple[float, object, str]] = field(default_factory=list)


class Watched:
    """One process, observed from outside while it runs (see the module docstring)."""

    def __init__(self, argv: Sequence[str], *, sample_interval: float = 0.01) -> None:
        # Closed in finish(): the process writes to it for as long as it runs.
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            list(argv),
            env=env(),
            stdout=subprocess.PIPE,
            stderr=self._err,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.lines: list[tuple[float, object, str]] = []
        self._cond = threading.Condition()
        self._hwm_kb = 0
        self._running = True
        self._interval = sample_interval
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._reader.start()
        self._sampler.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            t = time.perf_counter() - self.t0
            text = raw.decode(errors="replace").rstrip("\n")
            parsed: object = None
            if text.startswith("{"):
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
            with self._cond:
                self.lines.append((t, parsed, text))
                self._cond.notify_all()
        with self._cond:
            self._running = False
            self._cond.notify_all()

    def _sample(self) -> None:
        status = f"/proc/{self.pid}/status"
        while self._running:
            try:
                with open(status, "rb") as f:
                    for line in f:
                        if line.startswith(b"VmHWM:"):
                            self._hwm_kb = max(self._hwm_kb, int(line.split()[1]))
                            break
            except OSError:
                return
            time.sleep(self._interval)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process (all its threads) has used so far."""
        with open(f"/proc/{self.pid}/stat", "rb") as f:
            stat = f.read()
        # Fields after the command name (which may hold spaces) in parentheses.
        fields = stat[stat.rindex(b")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def thread_cpu_seconds(self) -> float:
        """CPU time of the process's live threads, in nanoseconds' precision.

        ``/proc/<pid>/task/*/schedstat``: :meth:`cpu_seconds` counts in clock
        ticks (10 ms), a third of the 1% budget over a 3 s window. A thread
        that exits takes its time with it, so compare only across a window in
        which none does.
        """
        total = 0
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat", "rb") as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue
        return total / 1e9

    def wait_until(self, predicate: Callable[[list[tuple[float, object, str]]], bool]) -> bool:
        """Block until ``predicate(lines so far)`` holds (True) or stdout closes (False)."""
        with self._cond:
            while not predicate(self.lines):
                if not self._running:
                    return predicate(self.lines)
                self._cond.wait(1.0)
            return True

    def finish(self, timeout: float = 1800.0) -> Outcome:
        """Wait for the process (killing its process group after ``timeout``)."""
        timer = threading.Timer(timeout, lambda: os.killpg(self.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, rusage = os.wait4(self.pid, 0)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - self.t0
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._running = False
        self._reader.join()
        self._sampler.join()
        self._err.seek(0)
        stderr = self._err.read().decode(errors="replace")
        self._err.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return Outcome(
            wall=elapsed,
            returncode=self.proc.returncode,
            stdout="\n".join(text for _, _, text in self.lines),
            stderr=stderr,
            hwm_kb=self._hwm_kb,
            tree_maxrss_kb=rusage.ru_maxrss,
            lines=self.lines,
        )


def watched(argv: Sequence[str], *, check: bool = True) -> Outcome:
    """Run ``argv`` to the end under :class:`Watched` (``sync`` first, untimed)."""
    os.sync()
    out = Watched(argv).finish()
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out
