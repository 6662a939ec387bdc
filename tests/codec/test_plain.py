"""Decoded values hold nothing of east-c, so they may cross threads (e3.codec.plain)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from east import EastRef, EastStruct, EastVariant, RefType
from east.types.values.collections import EastArray, EastDict, EastSet

from e3.codec import beast2
from e3.codec.plain import holds_containers
from e3.codec.types import (
    ArrayType,
    DictType,
    EastTypeType,
    IntegerType,
    OptionType,
    SetType,
    StringType,
    StructType,
    VariantType,
    some,
    variant,
)

SRC = Path(__file__).resolve().parents[2] / "src"
Row = StructType([("k", StringType), ("v", ArrayType(IntegerType))])
Nested = StructType(
    [
        ("rows", ArrayType(Row)),
        ("by", DictType(StringType, ArrayType(IntegerType))),
        ("tags", SetType(StringType)),
        ("cell", RefType(ArrayType(IntegerType))),
        ("pick", VariantType([("many", ArrayType(IntegerType)), ("one", IntegerType)])),
        ("maybe", OptionType(ArrayType(StringType))),
    ]
)


def _native_parts(value: Any) -> list[str]:
    """Names of the east-c backed containers anywhere in ``value``."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, EastArray | EastDict | EastSet) or hasattr(v, "_c_ptr"):
            found.append(type(v).__name__)
            return
        if isinstance(v, list | tuple | set):
            for x in v:
                walk(x)
        elif isinstance(v, dict | EastStruct):
            for x in v.values():
                walk(x)
        elif isinstance(v, EastRef | EastVariant):
            walk(v.value)

    walk(value)
    return found


def test_a_decoded_value_is_plain_python_and_encodes_to_the_same_bytes() -> None:
    value = {
        "rows": [{"k": "a", "v": [1, 2]}, {"k": "b", "v": []}],
        "by": {"x": [3], "y": [4, 5]},
        "tags": {"p", "q"},
        "cell": EastRef([7]),
        "pick": variant("many", [8, 9]),
        "maybe": some(["s"]),
    }
    data = beast2.encode(value, Nested)
    assert _native_parts(beast2.decode(data, Nested, native=True))  # east-py's own value is not
    decoded = beast2.decode(data, Nested)
    assert _native_parts(decoded) == []
    assert decoded["rows"] == [{"k": "a", "v": [1, 2]}, {"k": "b", "v": []}]
    assert decoded["by"] == {"x": [3], "y": [4, 5]} and decoded["tags"] == {"p", "q"}
    assert decoded["cell"].value == [7] and decoded["pick"].value == [8, 9]
    assert beast2.encode(decoded, Nested) == data


def test_sharing_survives_so_the_bytes_do_too() -> None:
    shared = [1, 2, 3]
    t = ArrayType(ArrayType(IntegerType))
    data = beast2.encode([shared, shared, [4]], t)
    decoded = beast2.decode(data, t)
    assert decoded[0] is decoded[1] and decoded[0] is not decoded[2]
    assert beast2.encode(decoded, t) == data
    assert beast2.encode([[1, 2, 3], [1, 2, 3], [4]], t) != data  # sharing is in the bytes


def test_types_without_containers_are_not_walked() -> None:
    assert not holds_containers(StructType([("a", IntegerType), ("b", OptionType(StringType))]))
    assert holds_containers(StructType([("a", OptionType(ArrayType(IntegerType)))]))
    assert holds_containers(EastTypeType)  # recursive: assumed to
    flat = StructType([("a", IntegerType)])
    decoded = beast2.decode(beast2.encode({"a": 1}, flat), flat)
    assert decoded == {"a": 1}


_CROSS_THREADS = textwrap.dedent(
    """
    import gc, sys, threading
    from e3.codec import beast2
    from e3.codec.types import ArrayType, DictType, IntegerType, StringType, StructType
    T = ArrayType(StructType([("k", StringType), ("v", ArrayType(IntegerType)),
                              ("d", DictType(StringType, ArrayType(IntegerType)))]))
    data = beast2.encode([{"k": str(i), "v": list(range(i % 5)), "d": {"a": [i]}}
                          for i in range(50)], T)
    native = sys.argv[1] == "native"
    kept = []
    for _ in range(60):
        def work():
            v = beast2.decode(data, T, native=native)
            cycle = [v]
            cycle.append(cycle)  # left for the collector, on whichever thread runs it
            kept.append(v)  # released later by the main thread, after this one ended
        t = threading.Thread(target=work)
        t.start()
        t.join()
        if len(kept) > 3:
            kept.pop(0)
        gc.collect()
    print("ok")
    """
)


def _cross_threads(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CROSS_THREADS, mode],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_decoded_values_may_be_dropped_on_another_thread() -> None:
    done = _cross_threads("plain")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's heap check names the damage")
def test_tripwire_east_py_native_values_still_corrupt_memory_across_threads() -> None:
    # When this fails, east-py has made its containers safe to release on any thread,
    # and e3.codec.plain (a full copy of every decoded value) may be dropped.
    done = _cross_threads("native")
    assert done.returncode != 0, "east-py no longer crashes: see e3.codec.plain"
