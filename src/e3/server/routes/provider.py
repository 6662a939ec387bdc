"""The built-in identity provider's endpoints (mounted at the server root, ``--oidc``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from e3.server.auth import Provider


def provider_routes(provider: Provider) -> list[BaseRoute]:
    """The built-in identity provider's endpoints (mounted at the server root)."""

    async def discovery(request: Request) -> Response:
        return JSONResponse(provider.discovery())

    async def jwks(request: Request) -> Response:
        return JSONResponse(provider.jwks())

    async def device_authorization(request: Request) -> Response:
        return JSONResponse(provider.device_authorization())

    async def device_page(request: Request) -> Response:
        code = request.query_params.get("user_code", "")
        safe = "".join(c for c in code if c.isalnum() or c == "-")[:16]
        return HTMLResponse(
            "<!doctype html><title>e3 login</title><h1>Approve an e3 login</h1>"
            "<form method='post' action='/device/approve'>"
            f"<p><label>Code shown by e3 login <input name='user_code' value='{safe}'></label>"
            "<p><label>Server approval secret <input name='secret' type='password'></label>"
            "<p><button>Approve</button></form>"
        )

    async def approve(request: Request) -> Response:
        form = await request.form()
        ok = provider.approve(str(form.get("user_code", "")), str(form.get("secret", "")))
        return HTMLResponse(
            "<p>Approved. You can close this page.</p>"
            if ok
            else "<p>Unknown or expired code, or wrong approval secret.</p>",
            status_code=200 if ok else 403,
        )

    async def token(request: Request) -> Response:
        form = await request.form()
        status, body = provider.token({k: str(v) for k, v in form.items()})
        return JSONResponse(body, status_code=status)

    return [
        Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/oauth2/device_authorization", device_authorization, methods=["POST"]),
        Route("/device", device_page, methods=["GET"]),
        Route("/device/approve", approve, methods=["POST"]),
        Route("/oauth2/token", token, methods=["POST"]),
    ]
