"""The e3 HTTP API: a Starlette application whose routes call the porcelain.

Paths follow the reference (``/api/repos/<repo>/…``). Each route module
(:mod:`e3.server.routes`) lists its endpoints; this module wraps each handler
with what every request needs (authentication, the route's role on its
repository (:mod:`e3.server.policy`), refusing encoded ``/`` in name
parameters, turning an :class:`~e3.errors.E3Error` into its HTTP reply, a
client gone mid-request ending quietly) and assembles the application. Routes
sharing a path are one Starlette route, so a wrong method gets a 405 whose
``Allow`` lists every method the path offers. Repository work runs in a
thread pool, so the event loop only moves bytes; dataflows run on the
engine's own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from e3.errors import AuthError, E3Error, InvalidPath, MethodNotAllowed, NotFoundError, UsageError
from e3.server.auth import Identity, TokenValidator
from e3.server.http import Endpoint, blocking, error_reply
from e3.server.policy import Policy
from e3.server.routes import all_endpoints
from e3.server.state import ServerConfig, ServerState

__all__ = ["ServerConfig", "create_app"]

#: Status logged (nowhere) for a request whose client went away mid-request.
CLIENT_CLOSED = 499


async def authenticate(validator: TokenValidator | None, request: Request) -> Identity | None:
    """The caller's identity from its bearer token (``None`` when the server needs no login)."""
    if validator is None:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token (run `e3 login <server>`)")
    if validator.fetches_keys:  # a JWKS download must not stall the event loop
        identity: Identity = await blocking(validator.validate, token.strip())
        return identity
    return validator.validate(token.strip())


def _wrap(
    endpoint: Endpoint, validator: TokenValidator | None, policy: Policy
) -> Callable[[Request], Awaitable[Response]]:
    # Segments up to a {…:path} parameter hold single names: no encoded '/'.
    fixed = endpoint.path.split("/")[1:]
    fixed = fixed[: next((i for i, s in enumerate(fixed) if s.endswith(":path}")), len(fixed))]

    async def handle(request: Request) -> Response:
        try:
            if endpoint.auth:
                identity = await authenticate(validator, request)
                request.state.identity = identity
                repo = request.path_params.get("repo")
                if repo is not None:
                    policy.check(identity, str(repo), endpoint.role)
            raw = (request.scope.get("raw_path") or b"").decode("latin-1")
            head = raw.split("?")[0].split("/")[1 : 1 + len(fixed)]
            if any("%2f" in seg.lower() for seg in head):
                raise InvalidPath("a '/' is not allowed in this path parameter")
            return await endpoint.handler(request)
        except E3Error as exc:
            return error_reply(exc, media=endpoint.media)
        except ClientDisconnect:
            # The client closed the connection mid-body: nobody is left to answer.
            return Response(status_code=CLIENT_CLOSED)

    return handle


def _dispatch(
    handlers: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    """One route's handler choosing by method (Starlette answers 405 for the others)."""

    async def handle(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return handle


def _routes(config: ServerConfig, endpoints: list[Endpoint]) -> list[BaseRoute]:
    by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for e in endpoints:
        by_path.setdefault(e.path, {})[e.method] = _wrap(e, config.validator, config.policy)
    routes: list[BaseRoute] = [
        Route(path, _dispatch(handlers), methods=list(handlers))
        for path, handlers in by_path.items()
    ]

    async def openapi(request: Request) -> Response:
        from e3.server.openapi import document

        return JSONResponse(document(endpoints))

    routes.append(Route("/api/openapi.json", openapi, methods=["GET"]))
    from e3.server.routes.ui import page_routes

    routes.extend(page_routes())  # the web view's page: no data, no login
    if config.provider is not None:
        from e3.server.routes.provider import provider_routes

        routes.extend(provider_routes(config.provider))
    return routes


async def _on_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ClientDisconnect):
        return Response(status_code=CLIENT_CLOSED)
    return error_reply(E3Error(f"internal error: {type(exc).__name__}"))


async def _on_http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    if code == 405:
        allowed = (
            exc.headers.get("Allow", "") if isinstance(exc, HTTPException) and exc.headers else ""
        )
        return error_reply(
            MethodNotAllowed(f"{request.method[:20]} is not offered here"),
            {"Allow": allowed} if allowed else None,
        )
    if code == 404:
        return error_reply(NotFoundError(f"no API endpoint {request.url.path[:200]}"))
    return error_reply(UsageError(f"bad request (HTTP {code})"))


def create_app(config: ServerConfig) -> Starlette:
    """The Starlette application serving ``config.repos``."""
    server = ServerState(config)
    endpoints = all_endpoints()
    middleware = []
    if config.cors:
        middleware.append(
            Middleware(
                CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"]
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        guard = config.connections
        if guard is not None:
            asyncio.get_running_loop().set_exception_handler(guard.loop_exception)
        try:
            yield
        finally:
            if guard is not None:
                guard.stop()
            await blocking(server.close)

    app = Starlette(
        routes=_routes(config, endpoints),
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={Exception: _on_error, 404: _on_http_error, 405: _on_http_error},
    )
    app.router.redirect_slashes = False  # a redirect would dodge the checks on the raw path
    app.state.e3 = server
    app.state.endpoints = endpoints
    return app
