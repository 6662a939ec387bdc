"""The type of an ``.east`` literal, where the literal alone decides it.

``e3 convert`` reads untyped values (``echo '[1,2,3]' | e3 convert --to json``),
as the reference does. ``25`` is an Integer, ``2.5`` a Float, ``[1, 2]`` an
``Array<Integer>``, ``(a=1, b="x")`` a Struct; the value is then parsed by
east-py with that type. Where the text leaves the type open — an empty
collection, a variant (its other cases are unknown), elements of different
types — :class:`AmbiguousType` names the place, and the caller asks for
``--type``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from e3.codec.types import (
    ArrayType,
    BlobType,
    BooleanType,
    DateTimeType,
    DictType,
    EastType,
    FloatType,
    IntegerType,
    NullType,
    SetType,
    StringType,
    StructType,
    print_type,
    same_type,
)
from e3.errors import DecodeError

#: Nesting beyond this is left to an explicit ``--type``.
MAX_DEPTH = 200

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<datetime>-?\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)
    | (?P<blob>0x[0-9a-fA-F]*)
    | (?P<float>-?(?:\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|NaN|Infinity)|-Infinity)
    | (?P<integer>-?\d+)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[\[\](){},=:.&])
    )""",
    re.VERBOSE,
)


class AmbiguousType(DecodeError):
    """The literal does not determine its type."""


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise DecodeError(f"cannot read .east text at offset {pos}: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or "punct"
        out.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


class _Reader:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def at(self, text: str) -> bool:
        """Whether the next token is ``text``."""
        tok = self.peek()
        return tok is not None and tok.text == text

    def take(self, expected: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or (expected is not None and tok.text != expected):
            want = f"'{expected}'" if expected else "a value"
            got = f"'{tok.text}'" if tok else "the end"
            raise DecodeError(f"expected {want}, found {got}")
        self.i += 1
        return tok

    def value(self, where: str, depth: int) -> EastType:
        if depth > MAX_DEPTH:
            raise AmbiguousType(f"{where}: nested too deep to infer a type")
        tok = self.take()
        leaf = {
            "string": StringType,
            "datetime": DateTimeType,
            "blob": BlobType,
            "float": FloatType,
            "integer": IntegerType,
        }.get(tok.kind)
        if leaf is not None:
            return leaf
        if tok.kind == "word":
            words = {"true": BooleanType, "false": BooleanType, "null": NullType}
            if tok.text in words:
                return words[tok.text]
            raise DecodeError(f"{where}: unexpected word {tok.text!r}")
        if tok.text == "[":
            return ArrayType(self.items("]", where, depth))
        if tok.text == "(":
            return self.struct(where, depth)
        if tok.text == "{":
            return self.braces(where, depth)
        if tok.text == ".":
            raise AmbiguousType(f"{where}: a variant (.case) leaves the type's other cases open")
        raise AmbiguousType(f"{where}: {tok.text!r} (references) leave the type open")

    def items(self, close: str, where: str, depth: int) -> EastType:
        found: EastType | None = None
        n = 0
        while self.peek() is not None and not self.at(close):
            t = self.value(f"{where}[{n}]", depth + 1)
            if found is not None and not same_type(found, t):
                raise AmbiguousType(
                    f"{where}: elements of different types ({print_type(found)}, {print_type(t)})"
                )
            found = t
            n += 1
            if self.at(","):
                self.take(",")
        self.take(close)
        if found is None:
            raise AmbiguousType(f"{where}: an empty collection does not say its element type")
        return found

    def struct(self, where: str, depth: int) -> EastType:
        fields: list[tuple[str, EastType]] = []
        while self.peek() is not None and not self.at(")"):
            name = self.take()
            if name.kind not in ("word", "string"):
                raise DecodeError(f"{where}: expected a field name, found {name.text!r}")
            self.take("=")
            key = name.text.strip('"')
            fields.append((key, self.value(f"{where}.{key}", depth + 1)))
            if self.at(","):
                self.take(",")
        self.take(")")
        return StructType(fields)

    def braces(self, where: str, depth: int) -> EastType:
        """``{k: v, …}`` (a Dict) or ``{a, b}`` (a Set)."""
        if self.at(":"):
            raise AmbiguousType(f"{where}: an empty dict does not say its types")
        start = self.i
        self.value(f"{where}{{key}}", depth + 1)  # the first key, to see what follows it
        if self.at(":"):
            self.i = start
            return self.dict_type(where, depth)
        self.i = start
        return SetType(self.items("}", where, depth))

    def dict_type(self, where: str, depth: int) -> EastType:
        key_t: EastType | None = None
        val_t: EastType | None = None
        while self.peek() is not None and not self.at("}"):
            k = self.value(f"{where}{{key}}", depth + 1)
            self.take(":")
            v = self.value(f"{where}{{value}}", depth + 1)
            for seen, new, what in ((key_t, k, "keys"), (val_t, v, "values")):
                if seen is not None and not same_type(seen, new):
                    raise AmbiguousType(f"{where}: {what} of different types")
            key_t, val_t = k, v
            if self.at(","):
                self.take(",")
        self.take("}")
        if key_t is None or val_t is None:
            raise AmbiguousType(f"{where}: an empty dict does not say its types")
        return DictType(key_t, val_t)


def infer_type(text: str, *, where: str = "value") -> EastType:
    """The East type an ``.east`` literal denotes.

    Raises:
        AmbiguousType: the literal does not determine it (the message says where).
        DecodeError: not ``.east`` text.
    """
    reader = _Reader(text)
    t = reader.value(where, 0)
    rest = reader.peek()
    if rest is not None:
        raise DecodeError(f"{where}: unexpected {rest.text!r} after the value")
    return t
