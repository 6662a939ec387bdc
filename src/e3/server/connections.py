"""Connections under hostile load: a cap below the descriptor limit, timeouts, quiet logs.

uvicorn accepts every connection and keeps it until the client closes it:
idle sockets (no token needed) used to take a server to its file descriptor
limit, after which it could accept nobody and logged each failure. Here every
connection is admitted by a :class:`ConnectionGuard`:

* at most ``cap`` are open at once (below the descriptor limit, so the server
  can still open its own files); at the cap, the connection that has waited
  longest for a request (idle or still sending its headers) is closed to make
  room, and if every connection is busy the newcomer gets an immediate 503
  and is closed, so a flood of idle sockets cannot lock real clients out;
* headers must arrive within ``header_timeout`` of connecting (or of the end
  of the previous request), a request body may not stall for longer than
  ``body_timeout``, nor may a reply the client does not read;
* repeated conditions (refusals, timeouts, accept failures, uvicorn's own
  per-event warnings) are logged once per interval with a count, not once
  per event (:class:`OncePerInterval`).

A sweep once a second checks the timeouts; nothing here runs per byte beyond
noting the time of the last read.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from e3.errors import ServiceUnavailable
from e3.model import wire

_log = logging.getLogger("e3.server")
#: How often timeouts are checked (seconds).
SWEEP_INTERVAL = 1.0
#: A repeated log message is written at most once per this many seconds.
LOG_INTERVAL = 60.0
#: How long a refused connection may stay open for its 503 to arrive (seconds).
LINGER = 1.0
#: Most refused connections lingering at once.
MAX_LINGERING = 64


def _busy_reply() -> bytes:
    body = wire.encode_error(
        ServiceUnavailable("the server is at its connection limit; try again shortly")
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"Content-Type: {wire.BEAST2}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class OncePerInterval(logging.Filter):
    """Let each message template through once per interval; count the rest.

    The count of what was held back is added to the next message of that
    template that gets through, and :meth:`flush` reports counts whose interval
    has passed even if no new message comes, so a flood that stops is still
    accounted for.
    """

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is written (see the class docstring)."""
        key = f"{record.name}:{record.msg}"
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it in the last {self.interval:g} s)"
        return True

    def flush(self, logger: logging.Logger) -> None:
        """Report counts held back for longer than the interval."""
        now = time.monotonic()
        for key, held in list(self._held.items()):
            if now - self._last.get(key, 0.0) >= self.interval:
                del self._held[key]
                self._last[key] = now
                logger.warning("%d more times: %s", held, key.split(":", 1)[1][:200])


class ConnectionGuard:
    """Admission, timeouts and eviction for every connection of one server."""

    def __init__(
        self,
        cap: int,
        *,
        header_timeout: float,
        body_timeout: float,
        log_filter: OncePerInterval | None = None,
    ) -> None:
        self.cap = cap
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.log_filter = log_filter or OncePerInterval()
        self.open: dict[GuardedProtocol, None] = {}
        #: Refused connections, kept a moment so their 503 arrives (see :meth:`refuse`).
        self.lingering: dict[GuardedProtocol, float] = {}
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self._busy = _busy_reply()

    def admit(self, conn: GuardedProtocol) -> bool:
        """Take ``conn`` in, making room if need be; ``False``: it was answered 503."""
        if len(self.open) >= self.cap:
            idle = [c for c in self.open if c.waiting_for_request()]
            if idle:
                # Connections that never completed a request go first (an idle flood), then
                # kept-alive ones; the longest waiting of them first.
                victim = min(idle, key=lambda c: (c.served > 0, c.phase_started))
                self.evicted += 1
                _log.warning("connection limit (%d) reached: closing idle connections", self.cap)
                victim.drop()
            else:
                self.refused += 1
                _log.warning("connection limit (%d) reached: refusing connections (503)", self.cap)
                self.refuse(conn)
                return False
        self.open[conn] = None
        self._ensure_sweeping(conn.loop)
        return True

    def _ensure_sweeping(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep, loop)

    def refuse(self, conn: GuardedProtocol) -> None:
        """Answer 503 and close, letting the answer arrive.

        Closing a socket whose client has sent bytes we did not read makes the
        kernel reset the connection, which can destroy the 503 before the client
        reads it. So the reply is followed by a half-close, what the client sends
        is read and dropped, and the connection is closed once the client closes
        or after :data:`LINGER` seconds. Only :data:`MAX_LINGERING` connections
        linger at once; beyond that they are closed at once.
        """
        conn.refused = True
        conn.transport.write(self._busy)
        if len(self.lingering) >= MAX_LINGERING or not conn.transport.can_write_eof():
            conn.transport.close()
            return
        conn.transport.write_eof()
        self.lingering[conn] = time.monotonic()
        self._ensure_sweeping(conn.loop)

    def release(self, conn: GuardedProtocol) -> None:
        """``conn`` is closed."""
        self.open.pop(conn, None)
        self.lingering.pop(conn, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        for conn in list(self.open):
            reason = conn.overdue(now, self)
            if reason is not None:
                self.timed_out += 1
                _log.warning("closing connections that %s", reason)
                conn.drop()
        for conn, since in list(self.lingering.items()):
            if now - since > LINGER:
                conn.drop()
        self.log_filter.flush(_log)
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep, loop)

    def stop(self) -> None:
        """Stop sweeping (the server is shutting down)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The event loop's exception handler: accept failures are logged, rate-limited."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            _log.error("cannot accept connections: %s", exc.strerror)
            return
        loop.default_exception_handler(context)


class GuardedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, admitted and timed by a :class:`ConnectionGuard`.

    Subclassed per server by :func:`guarded_protocol` (uvicorn instantiates the
    class itself, so the guard is a class attribute).
    """

    guard: ConnectionGuard

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Admit the connection (or answer 503 and close it)."""
        super().connection_made(transport)
        now = time.monotonic()
        self.phase_started = now
        self.last_read = now
        self.write_stalled: float | None = None
        #: Replies sent on this connection.
        self.served = 0
        #: Answered 503 at admission: what the client sends is dropped.
        self.refused = False
        self.guard.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        self.guard.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Note when the client last sent something (a refused connection's is dropped)."""
        if self.refused:
            return
        self.last_read = time.monotonic()
        super().data_received(data)

    def on_response_complete(self) -> None:
        """A reply is out: the wait for the next request's headers starts now."""
        self.phase_started = time.monotonic()
        self.served += 1
        super().on_response_complete()

    def pause_writing(self) -> None:
        """The client is not reading our reply fast enough."""
        if self.write_stalled is None:
            self.write_stalled = time.monotonic()
        super().pause_writing()

    def resume_writing(self) -> None:
        """The client reads again."""
        self.write_stalled = None
        super().resume_writing()

    def waiting_for_request(self) -> bool:
        """Whether no request is in progress (idle, or its headers not all in yet)."""
        return self.cycle is None or self.cycle.response_complete

    def overdue(self, now: float, guard: ConnectionGuard) -> str | None:
        """Why this connection should be closed now, if it should."""
        if self.transport.is_closing():
            return None
        if self.waiting_for_request():
            if now - self.phase_started > guard.header_timeout:
                return f"sent no complete request within {guard.header_timeout:g} s"
            return None
        if self.write_stalled is not None and now - self.write_stalled > guard.body_timeout:
            return f"did not read their reply for {guard.body_timeout:g} s"
        receiving = self.cycle.more_body and not self.flow.read_paused
        if receiving and now - self.last_read > guard.body_timeout:
            return f"sent nothing of their request body for {guard.body_timeout:g} s"
        return None

    def drop(self) -> None:
        """Close at once, discarding anything unsent (the request in progress sees a disconnect)."""
        self.guard.release(self)  # its room is free now, not when the loop reports the close
        self.transport.abort()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedProtocol]:
    """The protocol class uvicorn should instantiate for connections guarded by ``guard``."""
    return type("E3Protocol", (GuardedProtocol,), {"guard": guard})
