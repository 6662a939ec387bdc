"""The process runner: one process (group) per task, for any command.

The command runs in a new session (its own process group) with stdin from
``/dev/null`` and stdout/stderr appended straight to the execution's log
files, so logs are live without the engine copying bytes. A timeout or a
cancellation kills the whole group; so does the end of the command (a task
does not leave background processes behind). Exits are awaited with a pidfd
on the event loop, so thousands of short tasks need no extra threads.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

from e3.runners.base import OnStart, RunRequest, RunResult
from e3.runners.guardian import Guardian, kill_group


class ProcessRunner:
    """Runs each command in a fresh process."""

    name = "process"

    def __init__(self, *, guardian: Guardian | None = None) -> None:
        self.guardian = guardian or Guardian()

    def accepts(self, argv: Sequence[str]) -> bool:
        """Any command."""
        return bool(argv)

    async def run(self, request: RunRequest, on_start: OnStart) -> RunResult:
        """Spawn, wait (with the request's timeout), reap the group."""
        exe = shutil.which(request.argv[0], path=request.env.get("PATH"))
        if exe is None:
            return RunResult(error=f"command not found: {request.argv[0]}")
        try:
            with open(request.stdout, "wb") as out, open(request.stderr, "wb") as err:
                proc = subprocess.Popen(
                    [exe, *request.argv[1:]],
                    cwd=request.cwd,
                    env=request.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
        except OSError as exc:
            return RunResult(error=f"failed to start {request.argv[0]}: {exc.strerror or exc}")
        self.guardian.register(proc.pid)
        # The group is killed while the leader is still a zombie, so its pid (the
        # group id) cannot have been reused: stragglers a command leaves die too.
        reap_group = lambda: kill_group(proc.pid)  # noqa: E731
        try:
            on_start(proc.pid)
            try:
                await asyncio.wait_for(wait_exit(proc, reap_group), request.timeout)
            except TimeoutError:
                kill_group(proc.pid)
                await wait_exit(proc, reap_group)
                return RunResult(timed_out=True, pid=proc.pid)
            except asyncio.CancelledError:
                kill_group(proc.pid)
                await asyncio.shield(wait_exit(proc, reap_group))
                raise
        finally:
            self.guardian.unregister(proc.pid)
        rc = proc.returncode
        if rc is not None and rc < 0:
            return RunResult(signal=-rc, pid=proc.pid)
        return RunResult(exit_code=rc, pid=proc.pid)

    async def close(self) -> None:
        """Nothing pooled."""


async def wait_exit(proc: subprocess.Popen[bytes], before_reap: Callable[[], None]) -> int:
    """Await a child's exit without a thread (pidfd where available, else polling).

    ``before_reap`` runs after the child exited but before it is reaped.
    """
    if proc.returncode is not None:
        return proc.returncode
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        delay = 0.001
        while (code := proc.poll()) is None:  # this reaps: no before_reap on such systems
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        return code
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(pidfd, ready)
    try:
        await fut
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    before_reap()
    return proc.wait()
