"""Regression tests for the JSON guard in front of east-py's JSON reader.

`python -m fuzz hostile` found that east-py 1.0.97's JSON reader corrupts the heap on
malformed text and on Dict entries with fields other than "key" and "value" (the process
then dies later, far from the cause). ``text.from_json`` refuses both before east-py sees
them; these tests pin the refusals and that every prefix of a valid document is refused
cleanly (a crash would take the test worker down with it).
"""

from __future__ import annotations

import pytest

from e3.codec import text
from e3.codec.types import (
    ArrayType,
    DictType,
    IntegerType,
    OptionType,
    StringType,
    StructType,
    VariantType,
)
from e3.errors import DecodeError

DICT = DictType(StringType, IntegerType)
NESTED = StructType(
    [
        ("name", StringType),
        ("tags", ArrayType(DICT)),
        ("maybe", OptionType(DICT)),
        ("pick", VariantType([("a", DICT), ("b", IntegerType)])),
    ]
)
VALID_NESTED = (
    b'{"name": "n", "tags": [[{"key": "k", "value": "1"}]], "maybe": null,'
    b' "pick": {"type": "a", "value": [{"key": "z", "value": "2"}]}}'
)


def test_valid_nested_document_still_decodes() -> None:
    value = text.from_json(VALID_NESTED, NESTED)
    assert dict(value["tags"][0]) == {"k": 1}


@pytest.mark.parametrize(
    "doc",
    [
        b'[{"key": "0", "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv": 1}]',
        b'[{"key": "0", "value": 1, "extra": 2}]',
        b'[{"value": 1}]',
        b"[{}]",
    ],
)
def test_dict_entry_with_other_fields_is_refused(doc: bytes) -> None:
    with pytest.raises(DecodeError, match="a Dict entry must be"):
        text.from_json(doc, DICT)


@pytest.mark.parametrize(
    "doc",
    [
        b'{"name": "n", "tags": [[{"key": "k", "val": 1}]], "maybe": null,'
        b' "pick": {"type": "b", "value": 1}}',
        b'{"name": "n", "tags": [], "maybe": [{"key": "k"}], "pick": {"type": "b", "value": 1}}',
        b'{"name": "n", "tags": [], "maybe": null,'
        b' "pick": {"type": "a", "value": [{"k": "z", "value": 2}]}}',
    ],
)
def test_bad_dict_entry_found_below_containers(doc: bytes) -> None:
    with pytest.raises(DecodeError, match="a Dict entry must be"):
        text.from_json(doc, NESTED)


@pytest.mark.parametrize("doc", [b'{"a": ', b"[1, 2", b'"abc', b"tru", b"[1,]", b"\xff", b"", b"}"])
def test_malformed_json_is_a_decode_error(doc: bytes) -> None:
    with pytest.raises(DecodeError, match="invalid JSON"):
        text.from_json(doc, ArrayType(IntegerType))


def test_every_prefix_of_a_valid_document_is_refused_cleanly() -> None:
    for cut in range(len(VALID_NESTED)):
        with pytest.raises(DecodeError):
            text.from_json(VALID_NESTED[:cut], NESTED)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(DecodeError):
        text.from_json(deep, ArrayType(IntegerType))
