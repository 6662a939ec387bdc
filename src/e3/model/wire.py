"""HTTP bodies: Python result dataclasses as Beast2, and the success/error envelope.

Every typed API reply is Beast2 of ``Variant { error: Error, success: T }``
(the reference's envelope). ``T`` is derived from the annotations of the
result dataclass (:mod:`e3.model.results` and friends), so the server and the client
cannot disagree about a body: ``str`` is String, ``int`` Integer, ``float``
Float, ``bool`` Boolean, ``bytes`` Blob, ``datetime`` DateTime,
``X | None`` Option, ``list``/``tuple`` Array, ``dict[str, X]`` Dict, a
nested dataclass a Struct (fields in camelCase), a ``Literal`` String, and an
``Any`` (an East type) an ``Option<EastTypeType>``.

``Error = Struct { code: String, message: String, details: Dict<String, String> }``
where ``code`` is the wire code of :data:`e3.errors.ERROR_TABLE`, so the client
raises the same :class:`~e3.errors.E3Error` kind the server raised.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, get_args, get_origin, get_type_hints

from e3.codec import beast2
from e3.codec.types import (
    ArrayType,
    BlobType,
    BooleanType,
    DateTimeType,
    DictType,
    EastType,
    EastTypeType,
    FloatType,
    IntegerType,
    NullType,
    OptionType,
    StringType,
    StructType,
    VariantType,
    none,
    some,
    variant,
)
from e3.errors import DecodeError, E3Error, error_for_code

ErrorBodyType = StructType(
    [("code", StringType), ("message", StringType), ("details", DictType(StringType, StringType))]
)
#: ``Content-Type`` of Beast2 bodies.
BEAST2 = "application/beast2"


def camel(name: str) -> str:
    """``output_hash`` → ``outputHash``."""
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def type_hints(cls: Any) -> dict[str, Any]:
    """A wire dataclass's field annotations, resolved."""
    return get_type_hints(cls, include_extras=False)


def east_type_text(py_type: Any) -> str:
    """The East type of a wire type, as East text (for API descriptions)."""
    from e3.codec.types import print_type

    return str(print_type(east_type_of(py_type)))


@lru_cache(maxsize=256)
def east_type_of(py_type: Any) -> EastType:
    """The East type of a Python annotation (see the module docstring)."""
    origin = get_origin(py_type)
    if py_type is str:
        return StringType
    if py_type is bool:
        return BooleanType
    if py_type is int:
        return IntegerType
    if py_type is float:
        return FloatType
    if py_type is bytes:
        return BlobType
    if py_type is datetime:
        return DateTimeType
    if py_type is type(None):
        return NullType
    if py_type is Any:
        return OptionType(EastTypeType)
    if origin is Literal:
        return StringType
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(py_type) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {py_type!r}")
        return OptionType(east_type_of(args[0]))
    if origin in (list, tuple):
        item_type = get_args(py_type)[0]
        return ArrayType(east_type_of(item_type))
    if origin is dict:
        key, value = get_args(py_type)
        return DictType(east_type_of(key), east_type_of(value))
    if dataclasses.is_dataclass(py_type):
        hints = type_hints(py_type)
        return StructType(
            [(camel(f.name), east_type_of(hints[f.name])) for f in dataclasses.fields(py_type)]
        )
    raise TypeError(f"no wire type for {py_type!r}")


def to_east(value: Any, py_type: Any) -> Any:
    """A Python value of ``py_type`` as an East value of :func:`east_type_of` (py_type)."""
    origin = get_origin(py_type)
    if py_type is Any:
        return none if value is None else some(value)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in get_args(py_type) if a is not type(None)]
        return none if value is None else some(to_east(value, inner))
    if origin in (list, tuple):
        (item,) = get_args(py_type)[:1]
        return [to_east(v, item) for v in value]
    if origin is dict:
        key, item = get_args(py_type)
        return {to_east(k, key): to_east(v, item) for k, v in value.items()}
    if dataclasses.is_dataclass(py_type):
        hints = type_hints(py_type)
        return {
            camel(f.name): to_east(getattr(value, f.name), hints[f.name])
            for f in dataclasses.fields(py_type)
        }
    if py_type is type(None):
        return None
    return value


def from_east(value: Any, py_type: Any) -> Any:
    """Inverse of :func:`to_east`."""
    origin = get_origin(py_type)
    if py_type is Any:
        return value.value if value.type == "some" else None
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in get_args(py_type) if a is not type(None)]
        return from_east(value.value, inner) if value.type == "some" else None
    if origin is list:
        (item,) = get_args(py_type)
        return [from_east(v, item) for v in value]
    if origin is tuple:
        (item,) = get_args(py_type)[:1]
        return tuple(from_east(v, item) for v in value)
    if origin is dict:
        key, item = get_args(py_type)
        return {from_east(k, key): from_east(v, item) for k, v in value.items()}
    if dataclasses.is_dataclass(py_type):
        hints = type_hints(py_type)
        cls: Any = py_type
        return cls(
            **{
                f.name: from_east(value[camel(f.name)], hints[f.name])
                for f in dataclasses.fields(py_type)
            }
        )
    if py_type is str:
        return str(value)
    if py_type is int:
        return int(value)
    if py_type is float:
        return float(value)
    if py_type is bool:
        return bool(value)
    if py_type is bytes:
        return bytes(value)
    if py_type is type(None):
        return None
    return value


#: Most bytes a typed request body may decode to. Bodies are small records (names,
#: options, a size and a hash); a deflate frame could make a 1 MiB body claim a
#: gigabyte, so the decoded size is bounded too, before east-c sees the bytes.
MAX_BODY_DECODED = 1 << 20


def decode_body(data: bytes, py_type: Any, *, limit: int = MAX_BODY_DECODED) -> Any:
    """A request body (Beast2 of the wire type of ``py_type``) as a Python value.

    Raises:
        ValueTooLarge: the body decodes to more than ``limit`` bytes.
        DecodeError: it is not Beast2 of that type.
    """
    value = beast2.decode(data, east_type_of(py_type), trusted=False, limit=limit)
    return from_east(value, py_type)


@lru_cache(maxsize=256)
def envelope_type(success: EastType) -> EastType:
    """``Variant { error: Error, success: T }``."""
    return VariantType([("error", ErrorBodyType), ("success", success)])


def encode_success(value: Any, py_type: Any) -> bytes:
    """A success reply whose payload is ``value`` (a Python value of ``py_type``)."""
    t = east_type_of(py_type)
    return beast2.encode(variant("success", to_east(value, py_type)), envelope_type(t))


def encode_success_east(value: Any, east_type: EastType) -> bytes:
    """A success reply whose payload is already an East value of ``east_type``."""
    return beast2.encode(variant("success", value), envelope_type(east_type))


def encode_error(error: E3Error) -> bytes:
    """An error reply (its success type does not matter to readers: they see ``error``)."""
    body = {"code": error.spec.code, "message": error.message, "details": dict(error.details)}
    return beast2.encode(variant("error", body), envelope_type(NullType))


def decode_reply(data: bytes, py_type: Any) -> Any:
    """The payload of a reply as a Python value, or the error it carries, raised."""
    return _decode(data, east_type_of(py_type), lambda v: from_east(v, py_type))


def decode_reply_east(data: bytes, east_type: EastType) -> Any:
    """The payload of a reply as an East value of ``east_type``."""
    return _decode(data, east_type, lambda v: v)


def _decode(data: bytes, success: EastType, convert: typing.Callable[[Any], Any]) -> Any:
    try:
        found = beast2.read_type(data)
    except DecodeError as exc:
        raise DecodeError(f"server reply is not Beast2: {exc.message}") from exc
    if found.type != "Variant":
        raise DecodeError("server reply is not an e3 envelope")
    cases = {c["name"]: c["type"] for c in found.value}
    if "error" in cases and "success" in cases and cases["success"] != success:
        # An error reply is typed with a Null success; decode it by its own type.
        value = beast2.decode(data, found, trusted=False)
    else:
        value = beast2.decode(data, envelope_type(success), trusted=False)
    if value.type == "error":
        raise error_from_body(value.value)
    return convert(value.value)


def error_from_body(body: Any) -> E3Error:
    """The :class:`E3Error` an error body describes."""
    cls = error_for_code(str(body["code"]))
    return cls(str(body["message"]), **{str(k): str(v) for k, v in body["details"].items()})
