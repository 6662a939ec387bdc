"""Names that URLs mangle and types that compare badly, on a local path and over HTTP.

* ``.`` and ``..`` are valid dataset field names (quoted: ``ws.inputs.`..```). As plain
  URL segments, httpx removed them: a remote ``e3 get`` of ``ws.inputs.`..``` printed the
  workspace root's listing and exited 0, ``e3 status``/``e3 set`` crashed with a
  TypeError (exit 70). The client now sends them as ``%2E``/``%2E%2E``.
* A recursive-typed input could not be set: the package's declared type and the value's
  header type are equal structures whose recursive nodes east-py numbered differently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from east import IntegerType

import e3
from e3.codec import beast2
from e3.codec.types import ArrayType, RecursiveType, StructType, parse_type, print_type, same_type
from tests_support import Target, export_to, run_cli

pytestmark = pytest.mark.timeout(120)


def ok(*args: str | os.PathLike[str]) -> str:
    r = run_cli(*args)
    assert r.code == 0, f"e3 {' '.join(map(str, args))} -> {r.code}: {r.err}"
    return r.out


def deploy(target: Target, tmp_path: Path, pkg: e3.sdk.Package) -> None:
    ok("package", "import", target.loc, export_to(pkg, tmp_path))
    ok("workspace", "deploy", target.loc, "ws", pkg.name)


def test_dot_and_dotdot_field_names_address_their_own_datasets(
    target: Target, tmp_path: Path
) -> None:
    dot = e3.input(".", IntegerType, default=1)
    dotdot = e3.input("..", IntegerType, default=2)
    x = e3.input("x", IntegerType, default=3)
    t = e3.custom_task("t", [dot, dotdot, x], IntegerType, "cp {inputs[1]} {output}")
    deploy(target, tmp_path, e3.package("dots", "1.0.0", t))
    assert ok("get", target.loc, "ws.inputs.`..`").strip() == "2"
    assert ok("get", target.loc, "ws.inputs.`.`").strip() == "1"
    value = tmp_path / "v.east"
    value.write_text("22\n")
    ok("set", target.loc, "ws.inputs.`..`", value)
    assert ok("get", target.loc, "ws.inputs.`..`").strip() == "22"
    assert ok("get", target.loc, "ws.inputs.`.`").strip() == "1"  # its neighbour untouched
    assert ok("get", target.loc, "ws.inputs.x").strip() == "3"
    status = run_cli("status", target.loc, "ws.inputs.`..`")
    assert status.code == 0, status.err
    assert "Integer" in status.out
    listing = ok("list", target.loc, "ws.inputs")
    assert sorted(listing.split()) == [".", "..", "x"]


def tree_type() -> object:
    return RecursiveType(
        lambda self: StructType([("value", IntegerType), ("children", ArrayType(self))])
    )


def test_a_recursive_typed_input_can_be_set(target: Target, tmp_path: Path) -> None:
    tree = e3.input("tree", tree_type())
    n = e3.input("n", IntegerType, default=1)
    t = e3.custom_task("t", [n, tree], IntegerType, "cp {inputs[0]} {output}")
    deploy(target, tmp_path, e3.package("trees", "1.0.0", t))
    value = tmp_path / "tree.east"
    value.write_text("(value=1, children=[(value=2, children=[]), (value=3, children=[])])\n")
    ok("set", target.loc, "ws.inputs.tree", value)
    assert "value=3" in ok("get", target.loc, "ws.inputs.tree")
    out = tmp_path / "tree.beast2"
    ok("get", target.loc, "ws.inputs.tree", "-f", "beast2", "-o", out)
    ok("set", target.loc, "ws.inputs.tree", out)  # its own Beast2 back: same type


def test_recursive_types_compare_by_structure_not_by_node_ids() -> None:
    declared = parse_type(
        '.Recursive .wrapper (id=4, inner=.Struct [(name="v", type=.Integer), '
        '(name="c", type=.Array .Recursive .ref 4)])'
    )
    written = parse_type(print_type(declared).replace("id=4", "id=7").replace("ref 4", "ref 7"))
    other = parse_type(print_type(written).replace(".Integer", ".Float"))
    assert same_type(declared, written)
    assert same_type(ArrayType(declared), ArrayType(written))
    assert not same_type(declared, other)
    data = beast2.encode({"v": 1, "c": [{"v": 2, "c": []}]}, written)
    assert same_type(beast2.read_type(data), declared)
    found, canonical = beast2.canonicalize(data, declared)
    assert beast2.decode(canonical, found)["c"][0]["v"] == 2
