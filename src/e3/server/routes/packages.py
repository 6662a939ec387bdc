"""Packages: list, get, remove, import (upload, then a job) and export (a job, then a download)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from e3.errors import InvalidPath, UsageError
from e3.model.bodies import ImportRequest, JobStatus, UploadTicket
from e3.model.results import ImportResult, PackageInfo
from e3.records import package as package_record
from e3.server.http import (
    Endpoint,
    absolute_url,
    beast2_reply,
    blocking,
    east_reply,
    package_spec,
    param,
    raw_segments,
    typed_body,
)
from e3.server.routes.common import export_job, job_reply, start_job
from e3.server.state import server_of


async def list_packages(request: Request) -> Response:
    """All packages."""
    repo = server_of(request).repo(request)
    return beast2_reply(await blocking(repo.package_list), list[PackageInfo])


async def get_package(request: Request) -> Response:
    """A package object (structure, tasks, initial values)."""
    repo = server_of(request).repo(request)
    _info, pkg = await blocking(repo.package_object, package_spec(raw_segments(request, 4)))
    return east_reply(package_record.to_east(pkg), package_record.PackageObjectType)


async def remove_package(request: Request) -> Response:
    """Remove one version of a package (its objects stay until gc)."""
    repo = server_of(request).repo(request)
    info = await blocking(repo.package_remove, package_spec(raw_segments(request, 4)))
    return beast2_reply(info, PackageInfo)


async def announce_import(request: Request) -> Response:
    """Announce a package zip upload; replies where to PUT it."""
    body: ImportRequest = await typed_body(request, ImportRequest)
    server = server_of(request)
    server.repo(request)
    limit = server.config.limits.max_upload
    if not 0 < body.size <= limit:
        raise UsageError(f"upload size must be 1..{limit} bytes")
    up = server.transfers.new_upload(
        param(request, "repo"), body.size, "import", target="force" if body.force else ""
    )
    return beast2_reply(
        UploadTicket(up.id, absolute_url(request, f"/api/uploads/{up.id}")), UploadTicket
    )


async def run_import(request: Request) -> Response:
    """Import an uploaded zip (a job)."""
    server = server_of(request)
    repo = server.repo(request)
    up = server.transfers.claim(param(request, "id"), param(request, "repo"), "import")

    def work() -> JobStatus:
        try:
            res: ImportResult = repo.package_import(
                up.path, force=up.target == "force", limits=server.config.limits.zip
            )
            return JobStatus("succeeded", imported=res)
        finally:
            server.transfers.finish_upload(up.id)

    return start_job(request, "import", work)


async def import_status(request: Request) -> Response:
    """An import job's status."""
    return await job_reply(request, "import")


async def start_export(request: Request) -> Response:
    """Start exporting a package (``…/packages/<name>/<version>/export``)."""
    segs = raw_segments(request, 4)
    if segs[-1:] != ["export"]:
        raise InvalidPath("expected /packages/<name>/<version>/export")
    spec = package_spec(segs[:-1])
    repo = server_of(request).repo(request)
    await blocking(repo.package_object, spec)  # refused now if it does not exist
    return export_job(request, lambda out: repo.package_export(spec, out))


async def export_status(request: Request) -> Response:
    """An export job's status, with the download URL once done."""
    return await job_reply(request, "export")


ENDPOINTS = [
    Endpoint(
        "GET", "/api/repos/{repo}/packages", list_packages, "List packages", reply=list[PackageInfo]
    ),
    Endpoint("GET", "/api/repos/{repo}/packages/{spec:path}", get_package, "A package object"),
    Endpoint(
        "DELETE",
        "/api/repos/{repo}/packages/{spec:path}",
        remove_package,
        "Remove a package",
        "write",
        reply=PackageInfo,
    ),
    Endpoint(
        "POST",
        "/api/repos/{repo}/packages/{spec:path}",
        start_export,
        "Start a package export (…/export)",
    ),
    Endpoint(
        "POST",
        "/api/repos/{repo}/import",
        announce_import,
        "Announce a package upload",
        "write",
        body=ImportRequest,
        reply=UploadTicket,
    ),
    Endpoint(
        "POST", "/api/repos/{repo}/import/{id}", run_import, "Import an uploaded package", "write"
    ),
    Endpoint("GET", "/api/repos/{repo}/import/{id}", import_status, "Package import status"),
    Endpoint(
        "GET", "/api/repos/{repo}/export/{id}", export_status, "Export status (with a download URL)"
    ),
]
