"""Where the cluster is: a scheduler's address, or a local cluster started for the engine.

``tcp://HOST:PORT`` (also ``tls://``, ``ws://``, ``wss://``) connects to a
running ``dask scheduler``; ``local:N`` starts a ``LocalCluster`` of N worker
processes with one thread each, stopped with the engine. On connection every
worker's e3 and east-py versions are compared with the engine's.

Settings come from Dask's own configuration (YAML files or ``DASK_*``
environment variables), under ``e3``:

* ``e3.inline-limit`` (default ``64 KiB``): inputs up to this size travel
  with their task through the scheduler; larger ones never do;
* ``e3.connect-timeout`` (default ``10s``): how long to try to reach the scheduler.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from e3.errors import ClusterUnavailable, ClusterVersionMismatch, UsageError
from e3.runners.dask.spec import describe_versions, local_versions

_SCHEMES = ("tcp://", "tls://", "ws://", "wss://", "inproc://", "ucx://")
_LOCAL = re.compile(r"local:([1-9][0-9]{0,2})")
#: Defaults of the ``e3`` section of Dask's configuration.
DEFAULTS = {"inline-limit": "64 KiB", "connect-timeout": "10s"}


@dataclass(frozen=True)
class ClusterAddress:
    """A scheduler to connect to, or the size of a local cluster to start."""

    scheduler: str | None = None
    local_workers: int = 0

    def __str__(self) -> str:
        return self.scheduler or f"local:{self.local_workers}"


def parse_address(text: str) -> ClusterAddress:
    """``tcp://host:port`` or ``local:N`` (N from 1 to 999).

    Raises:
        UsageError: anything else.
    """
    text = text.strip()
    m = _LOCAL.fullmatch(text)
    if m:
        return ClusterAddress(local_workers=int(m.group(1)))
    if text.startswith(_SCHEMES) and len(text) > 8 and not any(c.isspace() for c in text):
        return ClusterAddress(scheduler=text)
    raise UsageError(
        f"cluster must be tcp://HOST:PORT (a Dask scheduler) or local:N, not {text[:60]!r}"
    )


def setting(name: str) -> Any:
    """An ``e3.*`` value of Dask's configuration (with e3's default)."""
    import dask.config

    return dask.config.get(f"e3.{name}", default=DEFAULTS[name])


def _quiet() -> None:
    """Dask logs to stderr at INFO; e3 reports what matters itself."""
    for name in ("distributed", "distributed.client", "distributed.scheduler", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


async def open_cluster(address: ClusterAddress) -> tuple[Any, Any]:
    """``(client, local cluster or None)``: an asynchronous client on the running loop.

    Raises:
        ClusterUnavailable: the scheduler cannot be reached (or the local cluster not started).
    """
    from dask.utils import parse_timedelta
    from distributed import Client, LocalCluster

    _quiet()
    timeout = parse_timedelta(setting("connect-timeout"))
    cluster: Any = None
    try:
        if address.scheduler is None:
            cluster = await LocalCluster(
                n_workers=address.local_workers,
                threads_per_worker=1,
                processes=True,
                asynchronous=True,
                dashboard_address=":0",  # its HTTP server, on any free port
                silence_logs=logging.CRITICAL,
            )
            target: Any = cluster
        else:
            target = address.scheduler
        client = await Client(
            target,
            asynchronous=True,
            direct_to_workers=True,
            timeout=timeout,
            set_as_default=False,
        )
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            await cluster.close()
        raise ClusterUnavailable(
            f"cannot reach the Dask scheduler at {address}: {_first_line(exc)}"
        ) from None
    return client, cluster


async def check_versions(client: Any) -> int:
    """Refuse a cluster whose workers run other e3 or east-py versions; returns the worker count.

    Raises:
        ClusterVersionMismatch: a worker's versions differ (both are named).
        ClusterUnavailable: a worker cannot run e3 at all (not installed there).
    """
    from e3.runners.dask.worker import worker_versions

    ours = local_versions()
    found = await client.run(worker_versions, on_error="return")
    for worker, theirs in sorted(found.items()):
        if isinstance(theirs, BaseException):
            raise ClusterUnavailable(
                f"cluster worker {worker} cannot run e3 tasks ({_first_line(theirs)}): "
                "install e3-engine[dask] there"
            )
        if tuple(theirs) != ours:
            raise ClusterVersionMismatch(
                f"cluster worker {worker} runs {describe_versions(tuple(theirs))} but this "
                f"engine runs {describe_versions(ours)}: install the same versions on every worker"
            )
    return len(found)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
