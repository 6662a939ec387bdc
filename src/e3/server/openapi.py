"""An OpenAPI 3.1 description of the API (``GET /api/openapi.json``), generated from the routes.

Every typed body is described twice: as a JSON Schema of its value (objects,
arrays, strings… as the East value it carries, so a client generator can build
the data types) and by the East type itself (``x-east-type``, in East text),
which is what the Beast2 bytes on the wire encode. Typed replies are wrapped in
the envelope ``Variant { error: Error, success: T }``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from datetime import datetime
from typing import Any, Literal, get_args, get_origin

from e3.model import wire
from e3.server.http import Endpoint

_PARAM = re.compile(r"\{([a-z_]+)(?::path)?\}")
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "wire code (e3.errors.ERROR_TABLE)"},
        "message": {"type": "string"},
        "details": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["code", "message", "details"],
}


def json_schema(py_type: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a wire type (dataclasses become named components)."""
    origin = get_origin(py_type)
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if py_type in simple:
        return {"type": simple[py_type]}
    if py_type is bytes:
        return {"type": "string", "contentEncoding": "base64"}
    if py_type is datetime:
        return {"type": "string", "format": "date-time"}
    if py_type is type(None):
        return {"type": "null"}
    if py_type is Any:
        return {"description": "an East type (EastTypeType), or null"}
    if origin is Literal:
        return {"type": "string", "enum": list(get_args(py_type))}
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in get_args(py_type) if a is not type(None)]
        return {"anyOf": [json_schema(inner, components), {"type": "null"}]}
    if origin in (list, tuple):
        return {"type": "array", "items": json_schema(get_args(py_type)[0], components)}
    if origin is dict:
        return {
            "type": "object",
            "additionalProperties": json_schema(get_args(py_type)[1], components),
        }
    if dataclasses.is_dataclass(py_type):
        name = typing.cast(type, py_type).__name__
        if name not in components:
            components[name] = {}  # placeholder first: types may refer to themselves
            hints = wire.type_hints(py_type)
            fields = dataclasses.fields(py_type)
            components[name] = {
                "type": "object",
                "description": (py_type.__doc__ or "").strip().split("\n")[0],
                "properties": {
                    wire.camel(f.name): json_schema(hints[f.name], components) for f in fields
                },
                "required": [wire.camel(f.name) for f in fields],
                "x-east-type": wire.east_type_text(py_type),
            }
        return {"$ref": f"#/components/schemas/{name}"}
    return {"description": f"{py_type!r}"}


def _content(py_type: Any, components: dict[str, Any], *, envelope: bool) -> dict[str, Any]:
    schema = json_schema(py_type, components)
    if envelope:
        schema = {
            "oneOf": [
                {"type": "object", "properties": {"success": schema}, "required": ["success"]},
                {"type": "object", "properties": {"error": _ERROR_SCHEMA}, "required": ["error"]},
            ],
            "x-east-type": f"Variant {{ error: Error, success: {wire.east_type_text(py_type)} }}",
        }
    return {"application/beast2": {"schema": schema}}


def _success(e: Endpoint, components: dict[str, Any]) -> dict[str, Any]:
    if e.media != wire.BEAST2:  # the web view's routes: JSON or server-sent events
        return {"description": e.summary, "content": {e.media: {}}}
    return {
        "description": "Beast2 `success` envelope (or raw bytes where noted)",
        "content": _content(e.reply, components, envelope=True)
        if e.reply is not None
        else {"application/beast2": {}},
    }


def document(endpoints: list[Endpoint]) -> dict[str, Any]:
    """The OpenAPI document of ``endpoints``."""
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        oas_path = _PARAM.sub(r"{\1}", e.path)
        op: dict[str, Any] = {
            "summary": e.summary,
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in _PARAM.findall(e.path)
            ],
            "responses": {
                "200": _success(e, components),
                "4XX": {
                    "description": "Beast2 `error` envelope: {code, message, details}",
                    "content": _content(type(None), components, envelope=True),
                },
            },
            "x-e3-role": e.role if e.auth else None,
        }
        if e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": _content(e.body, components, envelope=False),
            }
        elif e.method in ("POST", "PUT"):
            op["requestBody"] = {"required": False, "content": {"application/beast2": {}}}
        if e.auth:
            op["security"] = [{"bearer": []}]
        paths.setdefault(oas_path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "e3 API", "version": "1"},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "paths": paths,
    }
