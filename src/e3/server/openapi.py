"""An OpenAPI 3.1 description of the routes a server serves (``GET /api/openapi.json``)."""

from __future__ import annotations

import re
from typing import Any

_PARAM = re.compile(r"\{([a-z_]+)(?::path)?\}")


def document(routes: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The OpenAPI document for ``(method, path, summary)`` routes."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary in routes:
        oas_path = _PARAM.sub(r"{\1}", path)
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in _PARAM.findall(path)
        ]
        op: dict[str, Any] = {
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {
                    "description": "Beast2 `success` envelope (or raw bytes)",
                    "content": {"application/beast2": {}},
                },
                "4XX": {
                    "description": "Beast2 `error` envelope: {code, message, details}",
                    "content": {"application/beast2": {}},
                },
            },
        }
        if method in ("POST", "PUT"):
            op["requestBody"] = {"content": {"application/beast2": {}}}
        if not path.startswith(("/api/uploads", "/api/downloads")):
            op["security"] = [{"bearer": []}]
        paths.setdefault(oas_path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "e3 API", "version": "1"},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
        },
        "paths": paths,
    }
