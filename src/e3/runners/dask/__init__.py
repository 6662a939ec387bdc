"""Task execution on a Dask cluster (the ``dask`` extra: ``pip install 'e3-engine[dask]'``).

Only execution moves: planning, the execution cache, single-flight, records,
refs and logs stay in the engine. Each e3 execution is one Dask task keyed by
its execution id; the task evaluates the command IR on the worker with the
worker's own paths and runs it with the local runners there (warm East
workers, one process group per shell command), so timeouts, output caps,
killing and environment are those of a local run. Inputs travel by hash
(read from a shared file system and verified, or sent by the engine); the
output comes back as bytes and the engine verifies and stores it.

* :mod:`e3.runners.dask.spec` — what travels between the engine and a worker;
* :mod:`e3.runners.dask.worker` — the worker side (imported by Dask workers);
* :mod:`e3.runners.dask.objects` — a worker's verified copies of inputs;
* :mod:`e3.runners.dask.cluster` — connecting to a scheduler, or starting a local cluster;
* :mod:`e3.runners.dask.runner` — the engine side: the :class:`DaskRunner`.

Nothing here is imported unless a run asks for a cluster, so ``distributed``
is needed only then.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from e3.errors import UsageError

if TYPE_CHECKING:
    from e3.runners.dask.runner import DaskRunner


def dask_runner(cluster: str, *, isolation: str = "warm") -> DaskRunner:
    """A runner executing every command on ``cluster`` (``tcp://host:port`` or ``local:N``).

    Raises:
        UsageError: ``distributed`` is not installed, or the address is malformed.
    """
    from e3.runners.dask.cluster import parse_address

    address = parse_address(cluster)
    if importlib.util.find_spec("distributed") is None:
        raise UsageError("running on a cluster needs the dask extra: pip install 'e3-engine[dask]'")
    from e3.runners.dask.runner import DaskRunner

    return DaskRunner(address, isolation=isolation)
