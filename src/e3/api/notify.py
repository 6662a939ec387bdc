"""Waking waiters when something changed, whether they block a thread or await on a loop.

A run's events are produced on the engine's thread and consumed by CLI threads
(blocking) and by server coroutines (awaiting, possibly on another loop);
:class:`Notifier` serves both without polling and without holding a worker
thread per waiting client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable


class Notifier:
    """Wakes every waiter on :meth:`notify` (callable from any thread)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def notify(self) -> None:
        """Something changed: wake blocked threads and awaiting coroutines."""
        with self._cond:
            waiters, self._waiters = self._waiters, []
            self._cond.notify_all()
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_resolve, fut)

    def wait(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``ready()`` holds (``True``) or ``timeout`` seconds pass (``False``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not ready():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                # Bounded waits keep Ctrl-C responsive on every platform.
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
            return True

    async def wait_async(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        """:meth:`wait` for coroutines (no thread is held while waiting)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not ready():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            fut: asyncio.Future[None] = loop.create_future()
            with self._cond:
                self._waiters.append((loop, fut))
            if ready():  # changed between the check and the registration
                return True
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                with self._cond, contextlib.suppress(ValueError):
                    self._waiters.remove((loop, fut))
                return ready()
        return True


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
