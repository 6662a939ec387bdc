"""Workspaces: list, create, get, remove, deploy, status, export; their tasks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from e3.base.names import check_package_name, check_version
from e3.errors import TaskNotFound
from e3.model.bodies import DeployRequest, WorkspaceExportRequest, WorkspaceRequest
from e3.model.results import ExecutionInfo, PackageInfo, TaskInfo, WorkspaceInfo, WorkspaceStatus
from e3.server.http import Endpoint, beast2_reply, blocking, param, typed_body
from e3.server.routes.common import export_job
from e3.server.state import server_of

_WS = "/api/repos/{repo}/workspaces/{ws}"


async def list_workspaces(request: Request) -> Response:
    """All workspaces."""
    repo = server_of(request).repo(request)
    return beast2_reply(await blocking(repo.workspace_list), list[WorkspaceInfo])


async def create_workspace(request: Request) -> Response:
    """Create an empty workspace."""
    body: WorkspaceRequest = await typed_body(request, WorkspaceRequest)
    repo = server_of(request).repo(request)
    await blocking(repo.workspace_create, body.name)
    return beast2_reply(WorkspaceInfo(body.name, False), WorkspaceInfo, 201)


async def get_workspace(request: Request) -> Response:
    """One workspace."""
    repo = server_of(request).repo(request)
    return beast2_reply(await blocking(repo.workspace_get, param(request, "ws")), WorkspaceInfo)


async def remove_workspace(request: Request) -> Response:
    """Delete a workspace."""
    repo = server_of(request).repo(request)
    await blocking(repo.workspace_remove, param(request, "ws"))
    return beast2_reply(None, type(None))


async def deploy(request: Request) -> Response:
    """Deploy a package into a workspace."""
    body: DeployRequest = await typed_body(request, DeployRequest)
    repo = server_of(request).repo(request)
    info = await blocking(repo.workspace_deploy, param(request, "ws"), body.package_ref)
    return beast2_reply(info, PackageInfo)


async def workspace_status(request: Request) -> Response:
    """What a run would do now (``?task=NAME``, repeated: of those tasks and their upstream)."""
    repo = server_of(request).repo(request)
    tasks = request.query_params.getlist("task") or None
    status = await blocking(lambda: repo.workspace_status(param(request, "ws"), tasks=tasks))
    return beast2_reply(status, WorkspaceStatus)


async def export_workspace(request: Request) -> Response:
    """Start exporting a workspace as a package zip."""
    body: WorkspaceExportRequest = await typed_body(request, WorkspaceExportRequest)
    if body.name:
        check_package_name(body.name)  # refused now, not in a job that already ran
    if body.version:
        check_version(body.version)
    repo = server_of(request).repo(request)
    ws = param(request, "ws")
    await blocking(repo.workspace_get, ws)  # it exists
    return export_job(
        request, lambda out: repo.workspace_export(ws, out, name=body.name, version=body.version)
    )


async def list_tasks(request: Request) -> Response:
    """Tasks of the deployed package."""
    repo = server_of(request).repo(request)
    return beast2_reply(await blocking(repo.task_list, param(request, "ws")), list[TaskInfo])


async def get_task(request: Request) -> Response:
    """One task."""
    repo = server_of(request).repo(request)
    name = param(request, "task")
    for t in await blocking(repo.task_list, param(request, "ws")):
        if t.name == name:
            return beast2_reply(t, TaskInfo)
    raise TaskNotFound(f"no task '{name[:200]}'", task=name[:200])


async def task_execution(request: Request) -> Response:
    """The execution whose logs a task shows."""
    repo = server_of(request).repo(request)
    info = await blocking(repo.task_execution, param(request, "ws"), param(request, "task"))
    return beast2_reply(info, ExecutionInfo)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/repos/{repo}/workspaces",
        list_workspaces,
        "List workspaces",
        reply=list[WorkspaceInfo],
    ),
    Endpoint(
        "POST",
        "/api/repos/{repo}/workspaces",
        create_workspace,
        "Create a workspace",
        "admin",
        body=WorkspaceRequest,
        reply=WorkspaceInfo,
    ),
    Endpoint("GET", _WS, get_workspace, "A workspace", reply=WorkspaceInfo),
    Endpoint("DELETE", _WS, remove_workspace, "Remove a workspace", "admin"),
    Endpoint(
        "POST",
        f"{_WS}/deploy",
        deploy,
        "Deploy a package",
        "write",
        body=DeployRequest,
        reply=PackageInfo,
    ),
    Endpoint(
        "GET", f"{_WS}/status", workspace_status, "What a run would do now", reply=WorkspaceStatus
    ),
    Endpoint(
        "POST",
        f"{_WS}/export",
        export_workspace,
        "Start a workspace export",
        body=WorkspaceExportRequest,
    ),
    Endpoint(
        "GET", f"{_WS}/tasks", list_tasks, "Tasks of the deployed package", reply=list[TaskInfo]
    ),
    Endpoint("GET", f"{_WS}/tasks/{{task}}", get_task, "One task", reply=TaskInfo),
    Endpoint(
        "GET",
        f"{_WS}/tasks/{{task}}/execution",
        task_execution,
        "The execution whose logs the task shows",
        reply=ExecutionInfo,
    ),
]
