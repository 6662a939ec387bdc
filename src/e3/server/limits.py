"""What one server lets any one request, upload or connection cost it.

Each limit exists because a caller could otherwise make the server spend
memory, disk, file descriptors or its interpreter lock without bound (see
docs/security.md for the threat model and measured effects). Everything here
is plain data: the command line fills it (:func:`limits_from_args`), the
routes and the connection guard read it.
"""

from __future__ import annotations

import argparse
import resource
from dataclasses import dataclass, field

from e3.errors import UsageError
from e3.store.zipfmt import ZipLimits

#: Descriptors kept back from the connection cap for everything else a server opens
#: (repository files, task pipes, warm workers, spool files, log files).
FD_RESERVE = 256
#: Connection cap when the descriptor limit would allow more: each open connection
#: costs a few tens of KiB, and a team server has far fewer real clients.
DEFAULT_MAX_CONNECTIONS = 1000


@dataclass(frozen=True)
class Limits:
    """Limits of one server (sizes in bytes, times in seconds)."""

    #: Decoded size of one dataset value set over the API (inline ``PUT``, upload
    #: commit, ``e3 run`` inputs). Setting a value decodes and re-encodes it in the
    #: server process while holding its interpreter lock (~40 MB/s): this also
    #: bounds how long one write can stall other requests.
    max_value: int = 256 << 20
    #: Bytes of one upload (a package zip, a large dataset value).
    max_upload: int = 5 << 30
    #: What a package zip being imported may decompress to.
    zip: ZipLimits = field(default_factory=ZipLimits)
    #: Open connections at once; ``None``: :data:`DEFAULT_MAX_CONNECTIONS`, less if the
    #: descriptor limit is lower (see :func:`connection_cap`).
    max_connections: int | None = None
    #: Time a client has to send a request's headers, from connecting (or from the
    #: end of its previous request on a kept-alive connection).
    header_timeout: float = 10.0
    #: Longest silence while a request body is arriving, or while a reply cannot be
    #: sent because the client does not read it.
    body_timeout: float = 30.0
    #: An idle kept-alive connection is closed after this long.
    keep_alive: float = 5.0

    def describe(self, cap: int) -> str:
        """One line for the server's start-up banner."""
        return (
            f"limits: {cap} connections, value {_size(self.max_value)}, "
            f"upload {_size(self.max_upload)}, zip entry {_size(self.zip.entry)} "
            f"(total {_size(self.zip.total)}), headers {self.header_timeout:g}s, "
            f"body silence {self.body_timeout:g}s, keep-alive {self.keep_alive:g}s"
        )


def connection_cap(limits: Limits) -> int:
    """The connection cap: the configured one, never above the descriptor limit's room.

    Raises:
        UsageError: the descriptor limit leaves no room for connections.
    """
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = soft - FD_RESERVE if soft != resource.RLIM_INFINITY else 1 << 20
    wanted = limits.max_connections or DEFAULT_MAX_CONNECTIONS
    if room < 16:
        raise UsageError(
            f"the file descriptor limit ({soft}) leaves no room for connections: raise ulimit -n"
        )
    if limits.max_connections is not None and limits.max_connections > room:
        raise UsageError(
            f"--max-connections {limits.max_connections} is more than the file descriptor "
            f"limit allows ({soft} - {FD_RESERVE} kept for files): raise ulimit -n"
        )
    return min(wanted, room)


def limits_from_args(args: argparse.Namespace) -> Limits:
    """:class:`Limits` from the parsed options.

    Raises:
        UsageError: a size or duration that does not parse, or is not positive.
    """
    from e3.base.units import parse_duration, parse_size

    sizes = {
        name: parse_size(getattr(args, name))
        for name in ("max_value", "max_upload", "max_zip_entry", "max_zip_total")
    }
    times = {
        name: parse_duration(getattr(args, name), bare="s")
        for name in ("header_timeout", "body_timeout", "keep_alive")
    }
    for name, value in {**sizes, **times}.items():
        if value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be more than 0")
    if args.max_connections is not None and args.max_connections < 1:
        raise UsageError("--max-connections must be at least 1")
    return Limits(
        max_value=sizes["max_value"],
        max_upload=sizes["max_upload"],
        zip=ZipLimits(entry=sizes["max_zip_entry"], total=sizes["max_zip_total"]),
        max_connections=args.max_connections,
        header_timeout=times["header_timeout"],
        body_timeout=times["body_timeout"],
        keep_alive=times["keep_alive"],
    )


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)
