"""A repository on an e3 server, behind the same interface as a local one.

:class:`RemoteRepository` implements :class:`~e3.model.protocol.Repository` over
HTTP, so every CLI command works unchanged on ``http(s)://host/repos/<name>``.
Values larger than 1 MiB, package zips and exports go through the upload and
download flow; imports, exports and garbage collections are server-side jobs
that are polled; a dataflow runs in the server and is followed through its
event stream (Ctrl-C cancels it on the server, which kills its tasks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from e3.base.atomic import write_bytes
from e3.base.config import Settings
from e3.base.names import parse_package_spec
from e3.base.paths import DatasetPath
from e3.base.versions import version_key
from e3.client.http import Http, quote, split_url
from e3.client.runs import RemoteRun
from e3.client.transfers import download, file_chunks, read_all, save, wait_job
from e3.codec import beast2
from e3.codec.types import ArrayType
from e3.errors import PackageNotFound, RemoteError, StorageError, UsageError
from e3.model import wire
from e3.model.bodies import (
    DeployRequest,
    ImportRequest,
    JobStarted,
    RunInput,
    TaskRunRequest,
    UploadRequest,
    UploadTicket,
    WorkspaceExportRequest,
    WorkspaceRequest,
)
from e3.model.protocol import StartsRuns
from e3.model.results import (
    AdhocResult,
    DatasetEntry,
    ExecutionInfo,
    ExportResult,
    GcResult,
    ImportResult,
    LogChunk,
    PackageInfo,
    RepoStatus,
    TaskInfo,
    TaskLogSummary,
    VerifyReport,
    WorkspaceInfo,
    WorkspaceStatus,
)
from e3.model.retention import GcPolicy
from e3.model.runs import Isolation, StartOptions, newest
from e3.records import dataflow as run_record
from e3.records import package as package_record
from e3.records.dataflow import DataflowRun
from e3.records.package import PackageObject

#: Values above this size are sent through the upload flow.
INLINE_LIMIT = 1 << 20


def open_remote(
    url: str, settings: Settings, *, transport: httpx.BaseTransport | None = None
) -> RemoteRepository:
    """The repository at a URL.

    ``transport`` is another way to reach the server (in tests, an ASGI
    application in this process).
    """
    origin, name = split_url(url)
    return RemoteRepository(Http(origin, settings, transport=transport), name)


class RemoteRepository(StartsRuns):
    """One repository on one server."""

    def __init__(self, http: Http, name: str) -> None:
        self.http = http
        self.name = name
        self.base = f"/api/repos/{quote(name)}"

    def close(self) -> None:
        """Close the connections to the server."""
        self.http.close()

    def __enter__(self) -> RemoteRepository:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def location(self) -> str:
        """The repository URL."""
        return f"{self.http.origin}/repos/{self.name}"

    def _ws(self, ws: str) -> str:
        return f"{self.base}/workspaces/{quote(ws)}"

    def _dataset(self, ws: str, path: DatasetPath) -> str:
        return f"{self._ws(ws)}/datasets" + "".join("/" + quote(s) for s in path)

    # ── repository ───────────────────────────────────────────────────────
    def repo_status(self) -> RepoStatus:
        """Counts, packages and workspaces."""
        st: RepoStatus = self.http.call("GET", f"{self.base}/status", RepoStatus)
        return RepoStatus(self.location, st.object_count, st.packages, st.workspaces)

    def repo_remove(self) -> None:
        """Delete the repository on the server."""
        self.http.call("DELETE", self.base, type(None))

    def gc(self, policy: GcPolicy | None = None) -> GcResult:
        """Run a server-side collection and wait for it."""
        job: JobStarted = self.http.call(
            "POST",
            f"{self.base}/gc",
            JobStarted,
            body=policy or GcPolicy(),
            body_type=GcPolicy,
        )
        status = wait_job(self.http, f"{self.base}/gc/{job.id}")
        if status.collected is None:
            raise RemoteError("the server's collection finished without a result")
        return status.collected

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Run a server-side check (and repair) and wait for it."""
        params = {"repair": "1"} if repair else None
        job: JobStarted = self.http.call("POST", f"{self.base}/verify", JobStarted, params=params)
        status = wait_job(self.http, f"{self.base}/verify/{quote(job.id)}")
        if status.verified is None:
            raise RemoteError("the server's check finished without a result")
        return status.verified

    # ── packages ─────────────────────────────────────────────────────────
    def package_import(self, zip_path: Path, *, force: bool = False) -> ImportResult:
        """Upload a zip and import it on the server."""
        try:
            size = zip_path.stat().st_size
        except OSError as exc:
            raise StorageError(f"cannot read {zip_path}: {exc.strerror}") from exc
        ticket: UploadTicket = self.http.call(
            "POST",
            f"{self.base}/import",
            UploadTicket,
            body=ImportRequest(size, force),
            body_type=ImportRequest,
        )
        self.http.upload(ticket.upload_url, file_chunks(zip_path), size)
        job: JobStarted = self.http.call(
            "POST", f"{self.base}/import/{quote(ticket.id)}", JobStarted
        )
        status = wait_job(self.http, f"{self.base}/import/{quote(job.id)}")
        if status.imported is None:
            raise RemoteError("the server's import finished without a result")
        return status.imported

    def package_export(self, spec: str, out: Path) -> ExportResult:
        """Export on the server, then download the zip."""
        name, version = self._resolve(spec)
        job: JobStarted = self.http.call(
            "POST", f"{self._package(name, version)}/export", JobStarted
        )
        return self._finish_export(job, out)

    def _finish_export(self, job: JobStarted, out: Path) -> ExportResult:
        status = wait_job(self.http, f"{self.base}/export/{quote(job.id)}")
        if status.exported is None or status.download_url is None:
            raise RemoteError("the server's export finished without a result")
        size = download(self.http, status.download_url, out)
        e = status.exported
        return ExportResult(e.name, e.version, e.hash, e.object_count, size)

    def _package(self, name: str, version: str) -> str:
        return (
            f"{self.base}/packages/"
            + "/".join(quote(s) for s in name.split("/"))
            + (f"/{quote(version)}")
        )

    def _resolve(self, spec: str) -> tuple[str, str]:
        """``name[@version]`` → (name, version): the highest version when none is given."""
        name, version = parse_package_spec(spec)
        if version is not None:
            return name, version
        candidates = [p for p in self.package_list() if p.name == name]
        if not candidates:
            raise PackageNotFound(f"package {name} not found", packageName=name)
        return name, max(candidates, key=lambda p: version_key(p.version)).version

    def package_list(self) -> list[PackageInfo]:
        """All packages."""
        result: list[PackageInfo] = self.http.call(
            "GET", f"{self.base}/packages", list[PackageInfo]
        )
        return result

    def package_object(self, spec: str) -> tuple[PackageInfo, PackageObject]:
        """A package and its object."""
        name, version = self._resolve(spec)
        found = [p for p in self.package_list() if p.name == name and p.version == version]
        value = self.http.call_east(
            "GET", self._package(name, version), package_record.PackageObjectType
        )
        info = found[0] if found else PackageInfo(name, version, "")
        return info, package_record.from_east(value)

    def package_remove(self, spec: str) -> PackageInfo:
        """Remove ``name[@version]``."""
        result: PackageInfo = self.http.call(
            "DELETE", self._package(*self._resolve(spec)), PackageInfo
        )
        return result

    # ── workspaces ───────────────────────────────────────────────────────
    def workspace_create(self, ws: str) -> None:
        """Create an empty workspace."""
        self.http.call(
            "POST",
            f"{self.base}/workspaces",
            WorkspaceInfo,
            body=WorkspaceRequest(ws),
            body_type=WorkspaceRequest,
        )

    def workspace_deploy(self, ws: str, spec: str) -> PackageInfo:
        """Deploy a package."""
        result: PackageInfo = self.http.call(
            "POST",
            f"{self._ws(ws)}/deploy",
            PackageInfo,
            body=DeployRequest(spec),
            body_type=DeployRequest,
        )
        return result

    def workspace_list(self) -> list[WorkspaceInfo]:
        """All workspaces."""
        result: list[WorkspaceInfo] = self.http.call(
            "GET", f"{self.base}/workspaces", list[WorkspaceInfo]
        )
        return result

    def workspace_get(self, ws: str) -> WorkspaceInfo:
        """One workspace."""
        result: WorkspaceInfo = self.http.call("GET", self._ws(ws), WorkspaceInfo)
        return result

    def workspace_remove(self, ws: str) -> None:
        """Delete a workspace."""
        self.http.call("DELETE", self._ws(ws), type(None))

    def workspace_export(
        self, ws: str, out: Path, *, name: str | None = None, version: str | None = None
    ) -> ExportResult:
        """Export on the server, then download the zip."""
        job: JobStarted = self.http.call(
            "POST",
            f"{self._ws(ws)}/export",
            JobStarted,
            body=WorkspaceExportRequest(name, version),
            body_type=WorkspaceExportRequest,
        )
        return self._finish_export(job, out)

    def workspace_import(self, ws: str, zip_path: Path, *, force: bool = False) -> ImportResult:
        """Import a zip and deploy it into ``ws``."""
        result = self.package_import(zip_path, force=force)
        self.workspace_deploy(ws, f"{result.name}@{result.version}")
        return result

    def workspace_status(self, ws: str, *, tasks: list[str] | None = None) -> WorkspaceStatus:
        """Dry-run status (``tasks``: of those and their upstream only; ``?task=`` per name)."""
        params = None if tasks is None else {"task": tasks}
        result: WorkspaceStatus = self.http.call(
            "GET", f"{self._ws(ws)}/status", WorkspaceStatus, params=params
        )
        return result

    # ── datasets ─────────────────────────────────────────────────────────
    def dataset_list(
        self, ws: str, path: DatasetPath, *, recursive: bool = False, with_status: bool = False
    ) -> list[DatasetEntry]:
        """List datasets."""
        params = {"list": "1"}
        if recursive:
            params["recursive"] = "1"
        if with_status:
            params["status"] = "1"
        result: list[DatasetEntry] = self.http.call(
            "GET", self._dataset(ws, path), list[DatasetEntry], params=params
        )
        return result

    def dataset_status(self, ws: str, path: DatasetPath) -> DatasetEntry:
        """One dataset's status."""
        result: DatasetEntry = self.http.call(
            "GET", self._dataset(ws, path), DatasetEntry, params={"status": "1"}
        )
        return result

    def dataset_get(self, ws: str, path: DatasetPath) -> tuple[Any, bytes | None]:
        """A dataset's type and bytes (one streamed request when it holds a value)."""
        resp = self.http.check(self.http.request("GET", self._dataset(ws, path), stream=True))
        try:
            null = bool(resp.headers.get("x-e3-null"))
            data = None if null else read_all(resp)
        finally:
            resp.close()
        if data is None:
            return self.dataset_status(ws, path).type, None
        return beast2.read_type(data), data

    def dataset_save(self, ws: str, path: DatasetPath, out: Path) -> tuple[Any, int | None]:
        """Stream a dataset's Beast2 bytes into ``out``; its type and size (``None``: null)."""
        resp = self.http.check(self.http.request("GET", self._dataset(ws, path), stream=True))
        try:
            size = None if resp.headers.get("x-e3-null") else save(resp, out)
        finally:
            resp.close()
        if size is None:
            return self.dataset_status(ws, path).type, None
        with open(out, "rb") as f:
            return beast2.read_type(f.read(beast2.MAX_TYPE_SECTION + 64)), size

    def dataset_set(self, ws: str, path: DatasetPath, data: bytes) -> str:
        """Set a dataset (through the upload flow above 1 MiB)."""
        target = self._dataset(ws, path)
        if len(data) <= INLINE_LIMIT:
            resp = self.http.check(
                self.http.request(
                    "PUT", target, content=data, headers={"Content-Type": wire.BEAST2}
                )
            )
            h: str = wire.decode_reply(resp.content, str)
            return h
        digest = hashlib.sha256(data).hexdigest()
        ticket: UploadTicket = self.http.call(
            "POST",
            f"{target}/upload",
            UploadTicket,
            body=UploadRequest(digest, len(data)),
            body_type=UploadRequest,
        )
        self.http.upload(ticket.upload_url, data, len(data))
        result: str = self.http.call("POST", f"{target}/upload/{quote(ticket.id)}", str)
        return result

    # ── dataflow ─────────────────────────────────────────────────────────
    def start_with(self, ws: str, options: StartOptions) -> RemoteRun:
        """Start a run on the server (refusals raise here) and return its handle."""
        started: JobStarted = self.http.call(
            "POST",
            f"{self._ws(ws)}/dataflow",
            JobStarted,
            body=options,
            body_type=StartOptions,
        )
        return RemoteRun(self.http, self.base, started.id, ws)

    def runs(self, ws: str, *, last: int | None = None, brief: bool = False) -> list[DataflowRun]:
        """Run history (``last``, ``brief``: see the protocol; a server may ignore both)."""
        params = {} if last is None else {"last": str(max(0, last))}
        if brief:
            params["brief"] = "1"
        values = self.http.call_east(
            "GET",
            f"{self._ws(ws)}/dataflow/runs",
            ArrayType(run_record.DataflowRunType),
            params=params,
        )
        return list(newest([run_record.from_east(v) for v in values], last))

    def run(self, run_id: str) -> RemoteRun:
        """A run on the server by id."""
        return RemoteRun(self.http, self.base, run_id)

    def task_logs(self, ws: str) -> list[TaskLogSummary]:
        """Per-task execution summary."""
        result: list[TaskLogSummary] = self.http.call(
            "GET", f"{self._ws(ws)}/dataflow/logs", list[TaskLogSummary]
        )
        return result

    def task_execution(self, ws: str, task: str) -> ExecutionInfo:
        """The execution whose logs a task shows."""
        info: ExecutionInfo = self.http.call(
            "GET", f"{self._ws(ws)}/tasks/{quote(task)}/execution", ExecutionInfo
        )
        return info

    def read_log(
        self,
        ws: str,
        task: str,
        stream: str,
        offset: int,
        limit: int,
        execution_id: str | None = None,
    ) -> LogChunk:
        """A slice of a task's log (long-polled briefly when there is nothing new)."""
        params = {"stream": stream, "offset": str(offset), "limit": str(limit), "wait": "2"}
        if execution_id:
            params["execution"] = execution_id
        chunk: LogChunk = self.http.call(
            "GET", f"{self._ws(ws)}/dataflow/logs/{quote(task)}", LogChunk, params=params
        )
        return chunk

    def task_run(
        self,
        spec: str,
        task: str,
        inputs: list[Path],
        output: Path,
        *,
        force: bool = False,
        isolation: Isolation = "process",
        timeout: float | None = None,
        labels: list[str] | None = None,
        on_input: Callable[[str, str], None] | None = None,
    ) -> AdhocResult:
        """Upload the input files, run the task on the server, download its output."""
        from e3.codec.formats import format_from_name, render_value

        out_format = format_from_name(str(output)) or "beast2"
        if out_format == "csv":
            raise UsageError("e3 run writes .beast2, .east or .json output")
        uploads = []
        names = labels if labels is not None else [f.name for f in inputs]
        for file, label in zip(inputs, names, strict=True):
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {file}: {exc.strerror}") from exc
            ticket: UploadTicket = self.http.call(
                "POST",
                f"{self.base}/run/inputs",
                UploadTicket,
                body=UploadRequest(hashlib.sha256(data).hexdigest(), len(data)),
                body_type=UploadRequest,
            )
            self.http.upload(ticket.upload_url, data, len(data))
            uploads.append(RunInput(label, ticket.id))
        job: JobStarted = self.http.call(
            "POST",
            f"{self.base}/run",
            JobStarted,
            body=TaskRunRequest(spec, task, uploads, force, isolation, timeout),
            body_type=TaskRunRequest,
        )
        status = wait_job(self.http, f"{self.base}/run/{quote(job.id)}")
        if status.ran is None:
            raise RemoteError("the server's run finished without a result")
        res = status.ran
        if on_input is not None:
            for file, h in zip(inputs, status.input_hashes, strict=False):
                on_input(str(file), h)
        if res.error is None and status.download_url is not None:
            if out_format == "beast2":
                download(self.http, status.download_url, output)
            else:
                staged = output.with_name(output.name + ".beast2.partial")
                try:
                    download(self.http, status.download_url, staged)
                    data = staged.read_bytes()
                finally:
                    staged.unlink(missing_ok=True)
                t = beast2.read_type(data)
                text = render_value(beast2.decode(data, t, native=True), t, out_format)
                write_bytes(output, text, durable=False)
        return res

    def task_list(self, ws: str) -> list[TaskInfo]:
        """Tasks of the deployed package."""
        result: list[TaskInfo] = self.http.call("GET", f"{self._ws(ws)}/tasks", list[TaskInfo])
        return result
