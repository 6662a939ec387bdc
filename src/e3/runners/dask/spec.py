"""What travels between the engine and a Dask worker: a task's spec, its reply, two refusals.

Plain picklable data, imported on both sides (it needs neither ``distributed``
nor east-py). Inputs are named by hash; each carries its bytes only when the
engine sends them with the task (small values); large ones come as extra task
arguments that Dask resolves from scattered data, or are read by the worker
from the repository when it sees its file system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

#: Environment variables of a task that the engine sets and the worker passes on
#: (the rest of a task's environment is the worker's own).
TASK_VARIABLES = ("E3_WORKSPACE", "E3_RUN_ID", "E3_TASK", "E3_EXECUTION_ID")


@lru_cache(maxsize=1)
def local_versions() -> tuple[str, str]:
    """``(e3, east-py)`` versions installed in this process's environment."""
    found = []
    for dist in ("e3-engine", "elaraai-east-py"):
        try:
            found.append(version(dist))
        except PackageNotFoundError:
            found.append("not installed")
    return found[0], found[1]


def describe_versions(versions: tuple[str, str]) -> str:
    """``e3 0.1.0, east-py 1.0.97``."""
    return f"e3 {versions[0]}, east-py {versions[1]}"


@dataclass(frozen=True)
class InputRef:
    """One input object: its hash, and its bytes when they travel with the task.

    ``arg`` is the position among the task's extra arguments of its scattered
    bytes (``None``: inline, or to be read from the repository).
    """

    hash: str
    data: bytes | None = None
    arg: int | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One execution, as a worker runs it."""

    execution_id: str
    versions: tuple[str, str]
    command: InputRef
    inputs: tuple[InputRef, ...]
    repo_root: str
    env: dict[str, str]
    timeout: float | None
    log_limit: int
    isolation: str = "warm"
    label: str = ""


@dataclass(frozen=True)
class TaskReply:
    """How the command ended on the worker, with its output and logs.

    ``output`` is ``None`` when the command wrote no file; ``output_is_dir``
    when it made a directory there. Logs are capped at the spec's
    ``log_limit``; ``*_dropped`` counts the bytes left out.
    """

    worker: str
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None
    timed_out: bool = False
    output: bytes | None = None
    output_is_dir: bool = False
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    timings: dict[str, float] = field(default_factory=dict)


class InputUnavailable(Exception):
    """The worker could not find or verify these inputs: the engine should send them."""

    def __init__(self, hashes: list[str], worker: str) -> None:
        super().__init__(f"{worker} cannot read {len(hashes)} input(s) from the repository")
        self.hashes = hashes
        self.worker = worker

    def __reduce__(self) -> tuple[type[InputUnavailable], tuple[list[str], str]]:
        return InputUnavailable, (self.hashes, self.worker)


class VersionMismatch(Exception):
    """The worker runs other versions of e3 or east-py than the engine that sent the task."""

    def __init__(self, worker: str, theirs: tuple[str, str], ours: tuple[str, str]) -> None:
        super().__init__(
            f"cluster worker {worker} runs {describe_versions(theirs)} but this engine runs "
            f"{describe_versions(ours)}: install the same versions on every worker"
        )
        self.worker = worker
        self.theirs = theirs
        self.ours = ours

    def __reduce__(
        self,
    ) -> tuple[type[VersionMismatch], tuple[str, tuple[str, str], tuple[str, str]]]:
        return VersionMismatch, (self.worker, self.theirs, self.ours)
