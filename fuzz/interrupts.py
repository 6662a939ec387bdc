"""What a Ctrl-C may do to the ``e3`` command: the exact rule, and a sweep that checks it.

``e3`` installs its SIGINT handler at its first instruction (:mod:`e3.launcher`). An
interrupt that lands before then lands in the Python interpreter's own start-up, and
CPython 3.11 ends it in one of these ways (each seen in sweeps of this module):

* killed by SIGINT, nothing printed: the interpreter had not installed its handler yet;
* exit 1 with ``Fatal Python error: <step>: …`` and a ``KeyboardInterrupt`` traceback:
  interrupted while setting up (``init_sys_streams``, ``init_import_site``, …); the
  report may end with the interpreter's dump of the thread's stack ("Current thread …
  (most recent call first):" and its frames, or ``<no Python frame>``);
* exit 1 with ``Fatal Python error: init_sys_streams: …`` and a traceback through
  frozen start-up modules only, ending in another exception ("TypeError: expected a
  message argument" from ``<frozen io>``): the interrupt broke the streams' set-up;
* exit 1 with a bare ``KeyboardInterrupt`` (interrupted while reading the script), or
  with "python: failed to set __main__.__loader__" and a ``KeyboardInterrupt`` traceback;
* killed by SIGINT after a ``KeyboardInterrupt`` traceback through ``site``, the console
  script's ``import re`` or the search for the ``e3`` package;
* the interrupt is printed and *dropped* ("Failed checking if argv[0] is an import path
  entry", or "Exception ignored in: <function _get_module_lock.<locals>.cb>" when it hit a
  weak-reference callback of the import system), and the command then runs as if it had
  never come.

So the rule (:func:`judge`) is:

* **before e3**: killed by SIGINT, or exit 1 from the interpreter's start-up as above, is
  allowed only if nothing was printed on stdout, "Interrupted." is not on stderr, the
  repository's tree is byte-for-byte unchanged, and any traceback runs through no e3 code:
  no frame in the ``e3`` package and no console-script line after its import of e3 (a frame
  at "line 0" is a module that had not started its first statement: allowed);
* **interrupted**: exit 130 and no traceback, with "Interrupted." as the last line of
  stderr or, from ``e3 start`` once its engine runs, its report of the cancelled run
  ("Aborted." and why, on stdout: the engine cancels the run cleanly instead);
* **finished**: one of the command's normal exit codes (the interrupt came after it had
  finished, or the interpreter dropped it as above), with no traceback on stderr other
  than the interpreter's report of a dropped interrupt;
* anything else is a violation.

:func:`sweep` interrupts real ``e3`` processes at a series of delays and judges each one;
``python -m fuzz interrupts`` prints what it saw, delay by delay.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

E3 = Path(sys.executable).with_name("e3")

BEFORE_E3 = "before e3"
INTERRUPTED = "interrupted"
FINISHED = "finished"
DROPPED = "dropped"  # finished: the interpreter reported the interrupt and dropped it

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)')
#: How the interpreter reports an interrupt it then drops (the command carries on).
_DROPPED = ("Exception ignored in: ", "Failed checking if argv[0] is an import path entry")


class RuleBroken(AssertionError):
    """An interrupted ``e3`` ended in a way the rule does not allow."""


def tree_digest(root: Path) -> str:
    """Hash of every relative path, file's bytes and symlink's target under ``root``.

    Equal digests mean the tree is byte-for-byte unchanged (tests/tests_support.py has the
    same helper for the test suite; the fuzzer does not import the tests).
    """
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(dirpath, root)
        h.update(b"D" + rel.encode() + b"\0")
        for f in sorted(files):
            p = Path(dirpath) / f
            h.update(b"F" + os.path.join(rel, f).encode() + b"\0")
            h.update(b"L" + os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def _e3_package_dir() -> Path:
    import e3  # cheap: e3/__init__ imports nothing

    return Path(e3.__file__).resolve().parent


def _script_import_line(script: Path) -> int:
    """The console script's line that imports e3 (pip writes ``import re``/``sys`` first)."""
    for number, line in enumerate(script.read_text().splitlines(), 1):
        if line.startswith(("from e3", "import e3")):
            return number
    raise RuleBroken(f"{script} does not import e3")


def _e3_frames(stderr: str, script: Path) -> list[str]:
    """Traceback lines that show e3 code had started running."""
    package, import_line = _e3_package_dir(), _script_import_line(script)
    found = []
    for line in stderr.splitlines():
        m = _FRAME.match(line)
        if m is None or m["path"].startswith("<") or int(m["line"]) == 0:
            continue
        path = Path(m["path"]).resolve()
        in_package = path.is_relative_to(package)
        after_import = path == script.resolve() and int(m["line"]) > import_line
        if in_package or after_import:
            found.append(line.strip())
    return found


def _without_dropped_reports(stderr: str) -> str:
    """stderr without the interpreter's reports of an interrupt it dropped."""
    kept: list[str] = []
    skipping = False
    for line in stderr.splitlines(keepends=True):
        if line.startswith(_DROPPED):
            skipping = True
        if not skipping:
            kept.append(line)
        if skipping and line.rstrip() in ("KeyboardInterrupt", "KeyboardInterrupt:"):
            skipping = False
    if skipping:  # a report that never reached its KeyboardInterrupt: keep it all
        return stderr
    return "".join(kept)


def judge(
    returncode: int,
    stdout: str,
    stderr: str,
    *,
    tree_changed: bool,
    normal: Collection[int],
    script: Path = E3,
) -> str:
    """The kind of ending: :data:`BEFORE_E3`, :data:`INTERRUPTED`, :data:`FINISHED` or
    :data:`DROPPED` (finished after the interpreter dropped the interrupt).

    Raises :class:`RuleBroken` for any ending the rule in the module docstring forbids.
    ``normal`` are the exit codes the command has when it is not interrupted.
    """

    def broken(why: str) -> RuleBroken:
        return RuleBroken(f"{why} (exit {returncode}, stderr {stderr[-2000:]!r})")

    inside = _e3_frames(stderr, script)
    if inside:
        raise broken(f"traceback through e3's code: {inside[-1]}")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    stack_dumped = _fatal_startup(lines)  # ends with a stack dump, not the KeyboardInterrupt
    python_interrupted = stack_dumped or last in ("KeyboardInterrupt", "KeyboardInterrupt:")
    # Exit 1 ending in a KeyboardInterrupt comes from the interpreter failing to start
    # (a KeyboardInterrupt that escapes a running script kills the process by SIGINT).
    startup_exit = returncode == 1 and python_interrupted
    if returncode == -signal.SIGINT or startup_exit:
        if stdout:
            raise broken(f"died by the interrupt after printing {stdout[:200]!r}")
        if "Interrupted." in stderr:
            raise broken("died by the interrupt after saying 'Interrupted.'")
        if lines and not python_interrupted:
            raise broken("died by the interrupt with more than Python's start-up traceback")
        if tree_changed:
            raise broken("died by the interrupt after changing the repository")
        return BEFORE_E3
    if returncode == 130:
        aborted = "Aborted." in stdout.splitlines()  # e3 start's report of a cancelled run
        if last != "Interrupted." and not aborted:
            raise broken("exit 130 without 'Interrupted.' (stderr) or 'Aborted.' (stdout)")
        if "Traceback" in stderr or "Exception ignored" in stderr:
            raise broken("exit 130 with a traceback")
        return INTERRUPTED
    if returncode in normal:
        rest = _without_dropped_reports(stderr)
        if "Traceback" in rest or "Interrupted." in rest:
            raise broken("finished with a traceback or 'Interrupted.'")
        return FINISHED if rest == stderr else DROPPED
    raise broken(f"exit {returncode} is none of {sorted(normal)}, 130 or an interrupted start-up")


def _fatal_startup(lines: list[str]) -> bool:
    """Whether stderr is the interpreter's fatal start-up error caused by the interrupt.

    Either a KeyboardInterrupt followed by the interpreter's dump of the thread's stack
    (frames are judged by :func:`_e3_frames`), or a failure to set up the standard
    streams whose traceback runs only through frozen start-up modules (seen: the
    interrupt landing in ``<frozen io>`` ended as "TypeError: expected a message
    argument"): no script, so no e3 code, can have run before the streams exist.
    """
    if not lines or not lines[0].startswith("Fatal Python error: init_"):
        return False
    dump = next((i for i, line in enumerate(lines) if line.startswith("Current thread ")), None)
    if dump is not None:
        return "KeyboardInterrupt" in lines[:dump]
    frames = [line for line in lines if line.startswith("File ")]
    return (
        lines[0].startswith("Fatal Python error: init_sys_streams:")
        and "Traceback (most recent call last):" in lines
        and bool(frames)
        and all(line.startswith('File "<frozen ') for line in frames)
    )


@dataclass
class Probe:
    """One interrupted process: when the signal was sent, how it ended, the verdict."""

    delay_ms: float
    returncode: int
    kind: str


def interrupt_once(
    argv: Sequence[str],
    delay: float,
    *,
    normal: Collection[int],
    repo: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Probe:
    """Start ``e3 argv``, send SIGINT after ``delay`` seconds, judge how it ends."""
    before = tree_digest(repo) if repo is not None else ""
    proc = subprocess.Popen(
        [str(E3), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    time.sleep(delay)  # places the signal at the chosen moment: the point of the sweep
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuleBroken(f"e3 {' '.join(argv)}: still running {timeout} s after SIGINT") from None
    changed = repo is not None and tree_digest(repo) != before
    try:
        kind = judge(
            proc.returncode,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            tree_changed=changed,
            normal=normal,
        )
    except RuleBroken as exc:
        raise RuleBroken(
            f"e3 {' '.join(argv)}, SIGINT after {delay * 1000:.1f} ms: {exc}"
        ) from None
    return Probe(delay * 1000, proc.returncode, kind)


def sweep(
    argv: Sequence[str],
    delays_ms: Sequence[float],
    *,
    normal: Collection[int],
    repo: Path | None = None,
    env: dict[str, str] | None = None,
) -> list[Probe]:
    """Interrupt ``e3 argv`` once at each delay; raises :class:`RuleBroken` at the first
    ending the rule forbids."""
    return [interrupt_once(argv, ms / 1000, normal=normal, repo=repo, env=env) for ms in delays_ms]


def hello_repository(workdir: Path) -> Path:
    """A repository with the hello package deployed as ``ws`` and run once (so that a
    ``start`` has nothing to compute and only records its run), made with the ``e3``
    command itself and the public authoring API."""
    from east import East, IntegerType

    import e3

    x = e3.input("x", IntegerType, default=10)
    double = e3.task("double", [x], East.function([IntegerType], IntegerType, lambda b, v: v * 2))
    zip_path = workdir / "hello.zip"
    e3.export(e3.package("hello", "1.0.0", double), zip_path)
    root = workdir / "repo"
    for argv in (
        ["repo", "create", str(root)],
        ["package", "import", str(root), str(zip_path)],
        ["workspace", "deploy", str(root), "ws", "hello"],
        ["start", str(root), "ws"],
    ):
        done = subprocess.run([str(E3), *argv], capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"e3 {' '.join(argv)} failed: {done.stderr!r}")
    return root
