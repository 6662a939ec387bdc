"""The warm East worker a run will need, started before the engine is even imported.

A warm East worker takes 0.1-0.3 s to start (Python, then east-py's imports);
an ``e3 start`` process spends about as long importing the engine, opening the
repository and preparing the run. Started one after the other, the first East
task of every run waited for both. The CLI calls :func:`start_early` as its
first act, so the worker starts on the machine's other core while the engine
loads; the warm runner then adopts it instead of starting its own.

The guardian (which kills task processes if the engine dies) is not started
here: it is spawned, without waiting for it, on the first task's registration,
so starting it early saved a spawn call and cost every fully cached run a
Python start-up competing for the cores.

No worker is started for a workspace whose last run left it up to date, if
nothing was deployed or set since (:mod:`e3.base.settled`): that run will find
every task cached. A worker nobody adopted (the run was fully cached after all,
refused, or had no East task) is killed when the command ends; it has run nothing, and cost a core a
fraction of a second (``E3_EARLY_WORKER=0`` turns this off, for machines
where that matters more than the first task's latency). This module
imports only the standard library, so calling it costs the spawn and nothing
more.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import threading

#: What a warm worker runs: the reply channel arrives as fd 3 (the first argument names it).
_WORKER_CODE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.close(int(sys.argv[1])); "
    "from e3.runners.east_worker import main; main()"
)

_workers: list[tuple[subprocess.Popen[bytes], int]] = []
_cleanup_registered = False
_spawner: threading.Thread | None = None


def spawn_worker(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """Start a warm East worker process: ``(process, read end of its reply pipe)``.

    The worker runs in a session (process group) of its own, so a timeout can
    kill it with everything it started; it exits when its stdin closes.
    """
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE, str(w)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(w,),
            start_new_session=True,
            env=env,
        )
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    os.set_blocking(r, False)
    return proc, r


def start_early() -> None:
    """Start one warm worker for this process's engine.

    Idempotent: a second call while the first worker waits for adoption does nothing.
    """
    global _cleanup_registered, _spawner
    _spawned()
    if _workers:
        return
    if not _cleanup_registered:
        atexit.register(discard)
        _cleanup_registered = True
    # Spawned from a thread: each spawn waits for the child's exec (milliseconds on a busy
    # machine), which this process's start-up need not wait for.
    _spawner = threading.Thread(target=_spawn, name="e3-early-spawn", daemon=True)
    _spawner.start()


def _spawn() -> None:
    with contextlib.suppress(OSError):  # the engine starts its own when it needs one
        _workers.append(spawn_worker())


def _spawned() -> None:
    """Wait until the spawning thread is done with the lists (a few milliseconds at most)."""
    global _spawner
    if _spawner is not None:
        _spawner.join()
        _spawner = None


def waiting() -> list[int]:
    """Process ids of the workers started early and not adopted yet."""
    _spawned()
    return [p.pid for p, _ in _workers]


def take_worker() -> tuple[subprocess.Popen[bytes], int] | None:
    """The worker started early, if it is still there to adopt (then it is the caller's)."""
    _spawned()
    while _workers:
        proc, fd = _workers.pop()
        if proc.poll() is None:
            return proc, fd
        _close(proc, fd)
    return None


def discard() -> None:
    """Kill the processes nobody adopted (they have run nothing)."""
    _spawned()
    while _workers:
        proc, fd = _workers.pop()
        _close(proc, fd)


def _close(proc: subprocess.Popen[bytes], fd: int) -> None:
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    proc.wait()
    with contextlib.suppress(OSError):
        os.close(fd)
