"""The e3 HTTP API: a Starlette application whose routes call the porcelain.

Paths follow the reference (``/api/repos/<repo>/…``). Each route module
(:mod:`e3.server.routes`) lists its endpoints; this module wraps each handler
with what every request needs (authentication, refusing encoded ``/`` in name
parameters, turning an :class:`~e3.errors.E3Error` into its HTTP reply) and
assembles the application. Repository work runs in a thread pool, so the event
loop only moves bytes; dataflows run on the engine's own thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from e3.errors import AuthError, E3Error, InvalidPath, MethodNotAllowed, NotFoundError, UsageError
from e3.server.auth import Identity, TokenValidator
from e3.server.http import Endpoint, blocking, error_reply
from e3.server.routes import all_endpoints
from e3.server.state import ServerConfig, ServerState

__all__ = ["ServerConfig", "create_app"]


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
    endpoint: Endpoint, validator: TokenValidator | None
) -> Callable[..., Awaitable[Response]]:
    # Segments up to a {…:path} parameter hold single names: no encoded '/'.
    fixed = endpoint.path.split("/")[1:]
    fixed = fixed[: next((i for i, s in enumerate(fixed) if s.endswith(":path}")), len(fixed))]

    async def handle(request: Request) -> Response:
        try:
            if endpoint.auth:
                request.state.identity = await authenticate(validator, request)
            raw = (request.scope.get("raw_path") or b"").decode("latin-1")
            head = raw.split("?")[0].split("/")[1 : 1 + len(fixed)]
            if any("%2f" in seg.lower() for seg in head):
                raise InvalidPath("a '/' is not allowed in this path parameter")
            return await endpoint.handler(request)
        except E3Error as exc:
            return error_reply(exc)

    return handle


def _routes(config: ServerConfig, endpoints: list[Endpoint]) -> list[BaseRoute]:
    by_path: dict[str, list[Endpoint]] = {}
    for e in endpoints:
        by_path.setdefault(e.path, []).append(e)
    routes: list[BaseRoute] = []
    for e in endpoints:
        routes.append(Route(e.path, _wrap(e, config.validator), methods=[e.method]))

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
    return error_reply(E3Error(f"internal error: {type(exc).__name__}"))


async def _on_http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    if code == 405:
        allowed = (
            exc.headers.get("Allow", "") if isinstance(exc, HTTPException) and exc.headers else ""
        )
        return error_reply(
            MethodNotAllowed(f"{request.method} is not offered here"),
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
        try:
            yield
        finally:
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
