"""Repositories: list, create, delete, status, garbage collection, verification, objects."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from e3.base.names import check_hash
from e3.errors import MethodNotAllowed
from e3.model import wire
from e3.model.bodies import JobStatus
from e3.model.results import RepoStatus
from e3.model.retention import GcPolicy
from e3.server.http import (
    Endpoint,
    beast2_reply,
    blocking,
    file_reply,
    param,
    query_flag,
    typed_body,
)
from e3.server.routes.common import job_reply, start_job
from e3.server.state import server_of


async def list_repos(request: Request) -> Response:
    """Names of the served repositories the caller may read."""
    server = server_of(request)
    identity = getattr(request.state, "identity", None)
    names = await blocking(server.repos.names)
    visible = [n for n in names if server.config.policy.allows(identity, n, "read")]
    return beast2_reply(visible, list[str])


async def create_repo(request: Request) -> Response:
    """Create a repository (multi-repository servers only)."""
    repos, name = server_of(request).repos, param(request, "repo")
    if not repos.multi:
        raise MethodNotAllowed("this server serves a single repository")
    await blocking(repos.create, name)
    return beast2_reply(name, str, 201)


async def delete_repo(request: Request) -> Response:
    """Delete a repository with its workspaces."""
    server = server_of(request)
    if not server.repos.multi:
        raise MethodNotAllowed("this server serves a single repository")
    await blocking(server.repo(request).repo_remove)
    return beast2_reply(None, type(None))


async def repo_status(request: Request) -> Response:
    """Counts, packages and workspaces (located by name, not by server path)."""
    st: RepoStatus = await blocking(server_of(request).repo(request).repo_status)
    return beast2_reply(
        RepoStatus(param(request, "repo"), st.object_count, st.packages, st.workspaces),
        RepoStatus,
    )


async def start_gc(request: Request) -> Response:
    """Start a garbage collection job (retention policy in the body)."""
    policy: GcPolicy = await typed_body(request, GcPolicy)
    repo = server_of(request).repo(request)
    return start_job(request, "gc", lambda: JobStatus("succeeded", collected=repo.gc(policy)))


async def gc_status(request: Request) -> Response:
    """A collection job's status."""
    return await job_reply(request, "gc")


async def start_verify(request: Request) -> Response:
    """Start a verification job (``?repair`` recomputes damaged results)."""
    repo = server_of(request).repo(request)
    repair = query_flag(request, "repair")
    return start_job(
        request, "verify", lambda: JobStatus("succeeded", verified=repo.verify(repair=repair))
    )


async def verify_status(request: Request) -> Response:
    """A verification job's status."""
    return await job_reply(request, "verify")


async def get_object(request: Request) -> Response:
    """The raw bytes of an object, streamed (the client checks them against the hash header)."""
    repo = server_of(request).repo(request)
    h = check_hash(param(request, "hash"))
    f = await blocking(repo.open_object, h)
    return file_reply(request, f, wire.BEAST2, {"X-Content-SHA256": h})


ENDPOINTS = [
    Endpoint("GET", "/api/repos", list_repos, "List repositories", reply=list[str]),
    Endpoint("PUT", "/api/repos/{repo}", create_repo, "Create a repository", "admin", reply=str),
    Endpoint("DELETE", "/api/repos/{repo}", delete_repo, "Delete a repository", "admin"),
    Endpoint(
        "GET", "/api/repos/{repo}/status", repo_status, "Repository summary", reply=RepoStatus
    ),
    Endpoint(
        "POST",
        "/api/repos/{repo}/gc",
        start_gc,
        "Start a garbage collection",
        "admin",
        body=GcPolicy,
    ),
    Endpoint("GET", "/api/repos/{repo}/gc/{id}", gc_status, "Garbage collection status", "admin"),
    Endpoint("POST", "/api/repos/{repo}/verify", start_verify, "Start a repository check", "admin"),
    Endpoint(
        "GET", "/api/repos/{repo}/verify/{id}", verify_status, "Repository check status", "admin"
    ),
    Endpoint("GET", "/api/repos/{repo}/objects/{hash}", get_object, "Raw bytes of an object"),
]
