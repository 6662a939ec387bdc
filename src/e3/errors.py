"""Every error e3 raises on purpose, and the one table that says how each surfaces.

Callers can always write ``except E3Error``: anything else escaping e3 is a bug.
Each error kind has exactly one CLI exit code, one HTTP status and one wire
code (the ``error`` case name used in API replies), all defined in
:data:`ERROR_TABLE` so the CLI, the server and the client agree by construction.

Tree::

    E3Error                        exit 1   HTTP 500  internal
    ├── UsageError                 exit 2   HTTP 400  bad_request
    ├── NotFoundError              exit 3   HTTP 404  not_found
    │   ├── RepositoryNotFound               repository_not_found
    │   ├── ObjectNotFound                   object_not_found
    │   ├── PackageNotFound                  package_not_found
    │   ├── WorkspaceNotFound                workspace_not_found
    │   ├── DatasetNotFound                  dataset_not_found
    │   ├── DatasetUnassigned                dataset_unassigned
    │   ├── TaskNotFound                     task_not_found
    │   ├── ExecutionNotFound                execution_not_found
    │   └── JobNotFound                      job_not_found
    ├── ConflictError              exit 4   HTTP 409  conflict
    │   ├── RepositoryExists                 repository_exists
    │   ├── PackageExists                    package_exists
    │   ├── WorkspaceExists                  workspace_exists
    │   ├── WorkspaceNotDeployed             workspace_not_deployed
    │   ├── LockConflict                     workspace_locked
    │   └── ClusterVersionMismatch           cluster_version_mismatch
    ├── InvalidInputError          exit 5   HTTP 400  invalid_input
    │   ├── InvalidName                      invalid_name
    │   ├── InvalidPath                      invalid_path
    │   ├── DecodeError                      decode_error
    │   ├── TypeMismatch                     type_mismatch
    │   ├── InvalidPackage         (422)     package_invalid
    │   ├── ValueTooLarge          (413)     value_too_large
    │   └── PackageSourceError               package_source_error
    ├── PermissionDenied           exit 6   HTTP 403  permission_denied
    ├── CorruptObject              exit 7   HTTP 500  object_corrupt
    ├── StorageError               exit 10  HTTP 507  storage_error
    ├── DataflowError              exit 1   HTTP 500  dataflow_error
    │   ├── TaskFailed                       task_failed
    │   └── DataflowAborted        exit 130 HTTP 409  dataflow_aborted
    ├── WaitTimedOut               exit 1   HTTP 504  wait_timed_out
    ├── RunnerError                exit 1   HTTP 500  runner_error
    ├── AuthError                  exit 8   HTTP 401  unauthorized
    └── RemoteError                exit 9   HTTP 502  remote_error
        ├── ServiceUnavailable              HTTP 503  service_unavailable
        └── ClusterUnavailable               cluster_unavailable

This module imports nothing from e3 (it is a leaf every layer may use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

#: Longest error message kept (characters). Messages quote what the caller sent
#: (a name, a path), and a caller may send megabytes: every reply, log line and
#: terminal gets at most this much of it.
MAX_MESSAGE = 1000
#: Longest value of one ``details`` entry (a user traceback is the long legitimate one).
MAX_DETAIL = 16 << 10


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, marked with how much was left out."""
    if len(text) <= limit:
        return text
    marker = f"… ({len(text) - limit} more characters)"
    return text[: max(0, limit - len(marker))] + marker


class E3Error(Exception):
    """Root of every error e3 raises on purpose.

    ``message`` is one line, meant for a human: it names what was wrong and
    where. ``details`` carries machine-readable context (hash, path, name…)
    that the API sends alongside the wire code.
    """

    default_message: ClassVar[str] = "e3 error"

    def __init__(self, message: str | None = None, **details: str) -> None:
        self.message = clip(
            " ".join(clip(message or self.default_message, 4 * MAX_MESSAGE).split())
        )
        self.details = {k: clip(str(v), MAX_DETAIL) for k, v in details.items()}
        super().__init__(self.message)

    @property
    def spec(self) -> ErrorSpec:
        """How this error surfaces on the CLI and over HTTP."""
        return spec_for(type(self))


class UsageError(E3Error):
    """The command line or request was malformed (missing argument, bad flag)."""


class RequestTooLarge(UsageError):
    """An HTTP request body larger than the server accepts."""


class UnsupportedMediaType(UsageError):
    """An HTTP request body of the wrong ``Content-Type``."""


class MethodNotAllowed(UsageError):
    """An HTTP method a path does not offer (or one this server disables)."""


class NotFoundError(E3Error):
    """Something named by the caller does not exist."""


class RepositoryNotFound(NotFoundError):
    """No e3 repository at the given location."""


class ObjectNotFound(NotFoundError):
    """An object hash that the store does not hold."""


class PackageNotFound(NotFoundError):
    """No package with that name (and version)."""


class WorkspaceNotFound(NotFoundError):
    """No workspace with that name."""


class DatasetNotFound(NotFoundError):
    """A dataset path that does not exist in the workspace's structure."""


class DatasetUnassigned(NotFoundError):
    """The dataset exists but holds no value yet (for example a task output not computed)."""


class TaskNotFound(NotFoundError):
    """No task with that name in the package."""


class ExecutionNotFound(NotFoundError):
    """A task has no recorded execution (never run, or skipped)."""


class JobNotFound(NotFoundError):
    """An asynchronous job id (import, export, gc, upload) that is unknown or expired."""


class ConflictError(E3Error):
    """The request is valid but clashes with the repository's current state."""


class RepositoryExists(ConflictError):
    """A repository already exists where one was to be created."""


class PackageExists(ConflictError):
    """name@version is already imported with different content."""


class WorkspaceExists(ConflictError):
    """A workspace with that name already exists."""


class WorkspaceNotDeployed(ConflictError):
    """The workspace exists but has no package deployed."""


class LockConflict(ConflictError):
    """Another process holds a lock this operation needs."""


class InvalidInputError(E3Error):
    """Input supplied by the user is malformed or inconsistent."""


class InvalidName(InvalidInputError):
    """A workspace, package, version or dataset name that e3 cannot store safely."""


class InvalidPath(InvalidInputError):
    """A dataset path that does not parse."""


class DecodeError(InvalidInputError):
    """Bytes or text that do not decode as the expected format or type."""


class TypeMismatch(InvalidInputError):
    """A value whose East type differs from the one the dataset declares."""


class InvalidPackage(InvalidInputError):
    """A package zip or definition that is not a valid e3 package."""


class PackageSourceError(InvalidInputError):
    """The Python file defining a package failed (a mistake in it, not in e3).

    The message names the file and line; ``details["traceback"]`` holds the
    traceback through the user's own frames only.
    """


class ValueTooLarge(InvalidInputError):
    """A value, zip entry or archive that decodes to more bytes than a limit allows.

    Compressed input (Beast2 deflate frames, zip entries) can claim a thousand
    times its own size; such limits apply to what it decompresses to.
    """


class PermissionDenied(E3Error):
    """The operation is not allowed on this target (e.g. writing a task output)."""


class CorruptObject(E3Error):
    """Stored bytes no longer match their hash, or a record does not decode."""


class StorageError(E3Error):
    """The file system refused a write or read (disk full, permissions, I/O error)."""


class DataflowError(E3Error):
    """A dataflow could not complete."""


class TaskFailed(DataflowError):
    """One or more tasks failed."""


class DataflowAborted(DataflowError):
    """The dataflow was cancelled (Ctrl-C, cancel request or timeout of the whole run)."""


class WaitTimedOut(E3Error, TimeoutError):
    """Waiting for a run (or a job) ended before it did; it goes on."""


class RunnerError(E3Error):
    """A task runner could not start or talk to its process."""


class AuthError(E3Error):
    """Missing, invalid or expired credentials."""


class RemoteError(E3Error):
    """A remote e3 server could not be reached or answered outside the protocol."""


class ServiceUnavailable(RemoteError):
    """The server is at its connection limit (or shutting down): try again shortly."""


class ClusterUnavailable(RemoteError):
    """The Dask scheduler a run executes on could not be reached, or was lost during the run.

    It stops the run (finished results stay cached; the next start resumes).
    """


class ClusterVersionMismatch(ConflictError):
    """A cluster worker runs another version of e3 or east-py than the engine."""


@dataclass(frozen=True)
class ErrorSpec:
    """How one error kind surfaces: CLI exit code, HTTP status, wire code."""

    exit_code: int
    http_status: int
    code: str


#: The single table mapping error kinds to exit codes, HTTP statuses and wire codes.
#: Lookup walks the class's MRO, so a subclass without an entry inherits its parent's.
ERROR_TABLE: dict[type[E3Error], ErrorSpec] = {
    E3Error: ErrorSpec(1, 500, "internal"),
    UsageError: ErrorSpec(2, 400, "bad_request"),
    RequestTooLarge: ErrorSpec(2, 413, "payload_too_large"),
    UnsupportedMediaType: ErrorSpec(2, 415, "unsupported_media_type"),
    MethodNotAllowed: ErrorSpec(2, 405, "method_not_allowed"),
    NotFoundError: ErrorSpec(3, 404, "not_found"),
    RepositoryNotFound: ErrorSpec(3, 404, "repository_not_found"),
    ObjectNotFound: ErrorSpec(3, 404, "object_not_found"),
    PackageNotFound: ErrorSpec(3, 404, "package_not_found"),
    WorkspaceNotFound: ErrorSpec(3, 404, "workspace_not_found"),
    DatasetNotFound: ErrorSpec(3, 404, "dataset_not_found"),
    DatasetUnassigned: ErrorSpec(3, 404, "dataset_unassigned"),
    TaskNotFound: ErrorSpec(3, 404, "task_not_found"),
    ExecutionNotFound: ErrorSpec(3, 404, "execution_not_found"),
    JobNotFound: ErrorSpec(3, 404, "job_not_found"),
    ConflictError: ErrorSpec(4, 409, "conflict"),
    RepositoryExists: ErrorSpec(4, 409, "repository_exists"),
    PackageExists: ErrorSpec(4, 409, "package_exists"),
    WorkspaceExists: ErrorSpec(4, 409, "workspace_exists"),
    WorkspaceNotDeployed: ErrorSpec(4, 409, "workspace_not_deployed"),
    LockConflict: ErrorSpec(4, 409, "workspace_locked"),
    InvalidInputError: ErrorSpec(5, 400, "invalid_input"),
    InvalidName: ErrorSpec(5, 400, "invalid_name"),
    InvalidPath: ErrorSpec(5, 400, "invalid_path"),
    DecodeError: ErrorSpec(5, 400, "decode_error"),
    TypeMismatch: ErrorSpec(5, 400, "type_mismatch"),
    InvalidPackage: ErrorSpec(5, 422, "package_invalid"),
    ValueTooLarge: ErrorSpec(5, 413, "value_too_large"),
    PackageSourceError: ErrorSpec(5, 400, "package_source_error"),
    PermissionDenied: ErrorSpec(6, 403, "permission_denied"),
    CorruptObject: ErrorSpec(7, 500, "object_corrupt"),
    StorageError: ErrorSpec(10, 507, "storage_error"),
    DataflowError: ErrorSpec(1, 500, "dataflow_error"),
    TaskFailed: ErrorSpec(1, 500, "task_failed"),
    DataflowAborted: ErrorSpec(130, 409, "dataflow_aborted"),
    WaitTimedOut: ErrorSpec(1, 504, "wait_timed_out"),
    RunnerError: ErrorSpec(1, 500, "runner_error"),
    AuthError: ErrorSpec(8, 401, "unauthorized"),
    RemoteError: ErrorSpec(9, 502, "remote_error"),
    ServiceUnavailable: ErrorSpec(9, 503, "service_unavailable"),
    ClusterUnavailable: ErrorSpec(9, 502, "cluster_unavailable"),
    ClusterVersionMismatch: ErrorSpec(4, 409, "cluster_version_mismatch"),
}

#: Exit code of a command interrupted by Ctrl-C (128 + SIGINT), as shells expect.
EXIT_INTERRUPTED = 130
#: Exit code for a bug in e3 itself (an exception that is not an E3Error).
EXIT_INTERNAL = 70


def spec_for(kind: type[BaseException]) -> ErrorSpec:
    """The :class:`ErrorSpec` of an error class (nearest entry in its MRO)."""
    for cls in kind.__mro__:
        spec = ERROR_TABLE.get(cls)
        if spec is not None:
            return spec
    return ErrorSpec(EXIT_INTERNAL, 500, "internal")


def error_for_code(code: str) -> type[E3Error]:
    """The error class for a wire code (the client's inverse of the table)."""
    for cls, spec in ERROR_TABLE.items():
        if spec.code == code:
            return cls
    return E3Error
