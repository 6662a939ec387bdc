"""What ``e3 repo gc`` may remove: unreachable objects, and by policy old history.

Without a policy a collection removes only objects nothing can reach (and old
staging leftovers). Long-lived repositories also accumulate run records, task
logs, superseded executions and cached results nobody looks at; the policy
fields below bound each. Nothing a workspace currently shows is ever removed:
its values, its task outputs and the executions that produced them.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Objects younger than this are never deleted (they may be about to be referenced).
DEFAULT_MIN_AGE_SECONDS = 60.0


@dataclass(frozen=True)
class GcPolicy:
    """How much a collection removes (``None``: no limit of that kind).

    ``keep_runs``: run records (and their event logs) kept per workspace, newest
    first; ``older_than_seconds``: run records older than this go (the newest run
    of each workspace stays); ``keep_executions``: attempts kept per task and
    inputs, newest first, beyond those kept runs and current outputs refer to;
    ``max_size``: bytes the object store may hold, cached results that no package
    or workspace refers to being evicted least recently used first.
    """

    dry_run: bool = False
    min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS
    keep_runs: int | None = None
    older_than_seconds: float | None = None
    keep_executions: int | None = None
    max_size: int | None = None
