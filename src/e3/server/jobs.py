"""Asynchronous jobs of the API (import, export, gc, verify, e3 run): run, poll, expire.

Jobs run on a small thread pool; their status is kept in memory for an hour
(a restart forgets them, as in the reference). Ids are unguessable.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from e3.api.notify import Notifier
from e3.errors import E3Error, JobNotFound
from e3.model.bodies import JobStatus

#: Jobs (and transfers) not used within this many seconds are forgotten.
TTL = 3600.0


def new_id() -> str:
    """An unguessable id (192 random bits)."""
    return secrets.token_urlsafe(24)


@dataclass
class Job:
    """An asynchronous operation (import, export, gc)."""

    id: str
    repo: str
    kind: str
    status: JobStatus = field(default_factory=lambda: JobStatus("running"))
    finished_at: float | None = None
    changed: Notifier = field(default_factory=Notifier)

    @property
    def done(self) -> bool:
        """Whether the job has ended."""
        return self.finished_at is not None


class Jobs:
    """Jobs run on a small thread pool; their status is kept for an hour."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="e3-job")
        self._lock = threading.Lock()

    def start(self, repo: str, kind: str, work: Callable[[], JobStatus]) -> Job:
        """Run ``work`` in the background; its return value becomes the job's status."""
        job = Job(new_id(), repo, kind)
        with self._lock:
            self._expire()
            self._jobs[job.id] = job

        def run() -> None:
            try:
                job.status = work()
            except E3Error as exc:
                job.status = JobStatus("failed", message=exc.message, error_code=exc.spec.code)
            except Exception as exc:
                job.status = JobStatus(
                    "failed", message=f"internal error: {type(exc).__name__}: {exc}"
                )
            job.finished_at = time.monotonic()
            job.changed.notify()

        self._pool.submit(run)
        return job

    def get(self, repo: str, kind: str, job_id: str) -> Job:
        """A job of this kind (``import``, ``export``, ``gc``) on this repository."""
        job = self._jobs.get(job_id)
        if job is None or job.repo != repo or job.kind != kind:
            raise JobNotFound(f"no job {job_id!r}", id=job_id)
        return job

    def _expire(self) -> None:
        now = time.monotonic()
        for k in [
            k
            for k, j in self._jobs.items()
            if j.finished_at is not None and now - j.finished_at > TTL
        ]:
            del self._jobs[k]

    def close(self) -> None:
        """Stop accepting jobs."""
        self._pool.shutdown(wait=False, cancel_futures=True)
