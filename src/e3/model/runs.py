"""Dataflow runs as data: how to start one, and how it ended.

Shared by the engine (which produces them), the porcelain (which hands them to
callers), the HTTP wire (which carries them unchanged) and the CLI (which
prints them), so a run looks the same whether it ran here or on a server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from e3.errors import UsageError

T = TypeVar("T")

#: What ``cluster`` may be (checked again, fully, by the runner that connects).
_CLUSTER = re.compile(r"local:[1-9][0-9]{0,2}|(tcp|tls|ws|wss|inproc|ucx)://\S{1,300}")

#: Default size cap of each of a task's stdout and stderr logs.
DEFAULT_LOG_LIMIT = 10 << 20

Isolation = Literal["warm", "process"]
#: How a run ended. ``interrupted``: its engine stopped (killed, crashed, power cut)
#: before it could say; only records read back later carry it.
RunStatus = Literal["running", "completed", "failed", "cancelled", "interrupted"]
#: How a run that is over ended.
FinalStatus = Literal["completed", "failed", "cancelled", "interrupted"]


@dataclass(frozen=True)
class StartOptions:
    """How to run a dataflow (the flags of ``e3 start``)."""

    filters: tuple[str, ...] = ()
    concurrency: int = 4
    force: bool = False
    keep_going: bool = False
    timeout: float | None = None
    isolation: Isolation = "warm"
    log_limit: int = DEFAULT_LOG_LIMIT
    #: Where tasks run: ``None`` here, else a Dask scheduler (``tcp://host:port``)
    #: or ``local:N`` (a local Dask cluster of N worker processes).
    cluster: str | None = None


@dataclass
class Counts:
    """Tallies of a run's tasks by what happened to them."""

    total: int = 0
    completed: int = 0
    executed: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    waiting: int = 0
    pending: int = 0
    running: int = 0
    reexecuted: int = 0


@dataclass(frozen=True)
class TaskProblem:
    """A task that failed or could not run, and why.

    ``stderr_tail``: the last lines the task wrote to stderr (where the cause of
    a failure usually is), so a summary can show it without ``e3 logs``.
    """

    name: str
    reason: str
    stderr_tail: str = ""


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended."""

    run_id: str
    status: FinalStatus
    counts: Counts
    duration: float
    failed: list[TaskProblem] = field(default_factory=list)
    waiting: list[TaskProblem] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every selected task completed."""
        return self.status == "completed"


def newest(items: Sequence[T], last: int | None) -> Sequence[T]:
    """The ``last`` newest of ``items`` (oldest first); all of them when ``last`` is ``None``."""
    if last is None:
        return items
    return items[-last:] if last > 0 else items[:0]


def start_options(
    *,
    filter: str | Sequence[str] = (),
    concurrency: int = 4,
    force: bool = False,
    keep_going: bool = False,
    timeout: float | None = None,
    isolation: str = "warm",
    log_limit: int = DEFAULT_LOG_LIMIT,
    cluster: str | None = None,
) -> StartOptions:
    """Checked :class:`StartOptions` (the one place the CLI, the server and the API check them).

    Raises:
        UsageError: a value e3 cannot run with, named.
    """
    filters = (filter,) if isinstance(filter, str) else tuple(filter)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError("concurrency must be at least 1")
    if timeout is not None and not timeout > 0:
        raise UsageError("timeout must be positive")
    if isolation not in ("warm", "process"):
        raise UsageError(f"isolation must be warm or process, not {isolation[:40]!r}")
    if log_limit < 0:
        raise UsageError("log limit must not be negative")
    if cluster is not None:
        cluster = cluster.strip() or None
    if cluster is not None and not _CLUSTER.fullmatch(cluster):
        raise UsageError(
            f"cluster must be tcp://HOST:PORT (a Dask scheduler) or local:N, not {cluster[:60]!r}"
        )
    mode: Isolation = "process" if isolation == "process" else "warm"
    return StartOptions(filters, concurrency, force, keep_going, timeout, mode, log_limit, cluster)
