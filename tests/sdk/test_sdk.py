"""Authoring packages in Python: structure, objects, determinism, and every validation error."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from east import ArrayType, East, FloatType, IntegerType, NullType, StringType

import e3
from e3.codec import beast2
from e3.codec import ir as east_ir
from e3.codec.types import IRType
from e3.core import package_check, package_zip, workspaces
from e3.errors import InvalidPackage
from e3.records import task as task_record
from e3.records.package import PackageObject
from e3.records.structure import DatasetSpec, StructNode
from e3.sdk import build, export
from e3.sdk.loader import load_one
from e3.store.objects import MemoryObjectStore
from e3.store.repository import RepoStore
from tests_support import EXAMPLES

inc = East.function([IntegerType], IntegerType, lambda b, v: v + 1)


def test_input_task_layout_and_task_object() -> None:
    x = e3.input("x", IntegerType, default=3)
    t = e3.task("inc", [x], inc)
    pkg = e3.package("p", "1.0.0", t)
    assert [d.keypath for d in pkg.datasets] == [
        ".inputs.x",
        ".tasks.inc.function_ir",
        ".tasks.inc.output",
    ]
    store = MemoryObjectStore()
    h, pobj, objs = build(pkg, store)
    assert isinstance(pobj.structure, StructNode)
    fir = pobj.structure.children["tasks"].children["inc"].children["function_ir"]  # type: ignore[union-attr]
    assert fir == DatasetSpec(IRType, False)
    assert beast2.decode(store.get(pobj.refs[("inputs", "x")].hash or ""), IntegerType) == 3
    tobj = task_record.decode(store.get(pobj.tasks["inc"]))
    assert tobj.inputs == (("tasks", "inc", "function_ir"), ("inputs", "x"))
    assert tobj.output == ("tasks", "inc", "output")
    argv = east_ir.evaluate_command(store.get(tobj.command_ir), ["ir.b2", "x.b2"], "out.b2")
    assert argv == ["east-py", "run", "-i", "x.b2", "-o", "out.b2", "ir.b2"]
    assert h in objs


def test_platform_packages_are_detected_for_the_runner() -> None:
    log = East.platform("console_log", [StringType], NullType)

    def body(b, s):
        b.do(log(s))
        return s

    t = e3.task("t", [e3.input("s", StringType)], East.function([StringType], StringType, body))
    store = MemoryObjectStore()
    _h, pobj, _ = build(e3.package("p", "1.0.0", t), store)
    tobj = task_record.decode(store.get(pobj.tasks["t"]))
    argv = east_ir.evaluate_command(store.get(tobj.command_ir), ["ir", "s"], "o")
    assert argv[:4] == ["east-py", "run", "-p", "east-py-std"]


def test_custom_task_template_quotes_paths_and_function_commands() -> None:
    x = e3.input("x", IntegerType, default=1)
    t = e3.custom_task("copy", [x], IntegerType, "cp {inputs[0]} {output} # {{literal}}")
    store = MemoryObjectStore()
    _h, pobj, _ = build(e3.package("p", "1.0.0", t), store)
    tobj = task_record.decode(store.get(pobj.tasks["copy"]))
    argv = east_ir.evaluate_command(store.get(tobj.command_ir), ["/a b/it's"], "/out")
    assert argv == ["bash", "-c", "cp '/a b/it'\\''s' '/out' # {literal}"]
    fn = East.function(
        [ArrayType(StringType), StringType],
        StringType,
        lambda b, ins, out: ins.get(0).concat(" -> ").concat(out),
    )
    t2 = e3.custom_task("f", [x], IntegerType, fn)
    store2 = MemoryObjectStore()
    _h, pobj2, _ = build(e3.package("q", "1.0.0", t2), store2)
    tobj2 = task_record.decode(store2.get(pobj2.tasks["f"]))
    assert east_ir.evaluate_command(store2.get(tobj2.command_ir), ["i"], "o") == [
        "bash",
        "-c",
        "i -> o",
    ]


def test_chaining_collects_dependencies_transitively() -> None:
    x = e3.input("x", IntegerType, default=1)
    a = e3.task("a", [x], inc)
    b = e3.task("b", [a], inc)
    c = e3.task("c", [b.output], inc)
    pkg = e3.package("chain", "1.0.0", c)
    assert [t.name for t in pkg.tasks] == ["a", "b", "c"]


def test_export_is_byte_identical_across_definitions(tmp_path: Path) -> None:
    def define() -> e3.sdk.Package:
        return load_one(str(EXAMPLES / "typed_data.py"))

    export(define(), tmp_path / "a.zip")
    export(define(), tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_renaming_a_parameter_keeps_the_function_identity() -> None:
    f1 = East.function([IntegerType], IntegerType, lambda b, value: value * 2)
    f2 = East.function([IntegerType], IntegerType, lambda b, other: other * 2)
    f3 = East.function([IntegerType], IntegerType, lambda b, value: value * 3)
    assert east_ir.function_ir_bytes(f1) == east_ir.function_ir_bytes(f2)
    assert east_ir.function_ir_bytes(f1) != east_ir.function_ir_bytes(f3)


def test_async_functions_are_tasks(repo: RepoStore, tmp_path: Path) -> None:
    sleep = East.asyncPlatform("time_sleep", [IntegerType], NullType)

    def body(b, v):
        b.do(sleep(1))
        return v + 100

    t = e3.task(
        "slow",
        [e3.input("x", IntegerType, default=1)],
        East.asyncFunction([IntegerType], IntegerType, body),
    )
    export(e3.package("asyncpkg", "1.0.0", t), tmp_path / "a.zip")
    package_zip.import_package(repo, tmp_path / "a.zip")
    workspaces.deploy(repo, "ws", "asyncpkg")
    from e3.core import datasets
    from e3.dataflow.scheduler import run_sync
    from e3.model.runs import StartOptions

    for isolation in ("warm", "process"):
        out = run_sync(repo, "ws", StartOptions(isolation=isolation, force=True))
        assert out.status == "completed", out.failed
        assert datasets.get_value(repo, "ws", ("tasks", "slow", "output"))[1] == 101


@pytest.mark.parametrize("example", sorted(p.stem for p in EXAMPLES.glob("*.py")))
def test_each_example_exports_imports_and_deploys(
    repo: RepoStore, tmp_path: Path, example: str
) -> None:
    pkg = load_one(str(EXAMPLES / f"{example}.py"))
    zp = tmp_path / "pkg.zip"
    export(pkg, zp)
    with zipfile.ZipFile(zp) as z:
        names = z.namelist()
    assert f"packages/{pkg.name}/{pkg.version}" in names
    res = package_zip.import_package(repo, zp)
    workspaces.deploy(repo, "ws", pkg.ref)
    dep = workspaces.open_deployed(repo, "ws")
    assert sorted(dep.package.tasks) == sorted(t.name for t in pkg.tasks)
    refs = workspaces.read_all_refs(dep)
    for d in pkg.datasets:
        assert d.path in refs
        assert (refs[d.path].kind == "value") == (d.default is not None)
    for name, h in dep.package.tasks.items():
        tobj = task_record.decode(repo.objects.get(h))
        assert tobj.output == ("tasks", name, "output")
    assert res.hash == dep.state.package_hash


# ── validation errors ───────────────────────────────────────────────────────


def test_wrong_arity() -> None:
    two = East.function([IntegerType, IntegerType], IntegerType, lambda b, p, q: p + q)
    with pytest.raises(InvalidPackage, match="task 'add': the function takes 2 parameter"):
        e3.task("add", [e3.input("x", IntegerType)], two)


def test_type_mismatch_names_task_parameter_and_input() -> None:
    with pytest.raises(
        InvalidPackage,
        match=r"task 't': parameter 0 expects \.Integer but input \.inputs\.s "
        r"is \.String",
    ):
        e3.task("t", [e3.input("s", StringType)], inc)


def test_unknown_input_kind() -> None:
    with pytest.raises(InvalidPackage, match="task 't': input 0 is str"):
        e3.task("t", ["x"], inc)  # type: ignore[list-item]


def test_not_an_east_function() -> None:
    with pytest.raises(InvalidPackage, match="fn must be an East function"):
        e3.task("t", [e3.input("x", IntegerType)], lambda v: v)


def test_bad_default_value() -> None:
    with pytest.raises(InvalidPackage, match="input 'x': default value does not fit"):
        e3.input("x", IntegerType, default="ten")


def test_duplicate_task_names() -> None:
    x = e3.input("x", IntegerType)
    a1 = e3.task("a", [x], inc)
    a2 = e3.task("a", [x], East.function([IntegerType], IntegerType, lambda b, v: v + 2))
    with pytest.raises(InvalidPackage, match="two different tasks are named 'a'"):
        e3.package("p", "1.0.0", a1, a2)


def test_duplicate_datasets() -> None:
    with pytest.raises(InvalidPackage, match=r"two different datasets at \.inputs\.x"):
        e3.package("p", "1.0.0", e3.input("x", IntegerType), e3.input("x", FloatType))


def test_bad_names() -> None:
    with pytest.raises(InvalidPackage, match="invalid package name"):
        e3.package("bad name", "1.0.0")
    with pytest.raises(InvalidPackage, match="invalid package version"):
        e3.package("ok", "1 0")
    with pytest.raises(InvalidPackage, match="invalid task name"):
        e3.task("a/b", [e3.input("x", IntegerType)], inc)
    with pytest.raises(InvalidPackage, match="invalid dataset field name"):
        e3.input("", IntegerType)


def test_template_placeholder_errors() -> None:
    x = e3.input("x", IntegerType)
    with pytest.raises(InvalidPackage, match=r"uses \{inputs\[3\]\} but the task has 1"):
        e3.custom_task("t", [x], IntegerType, "cat {inputs[3]} > {output}")
    with pytest.raises(InvalidPackage, match="unknown placeholder"):
        e3.custom_task("t", [x], IntegerType, "cat {input} > {output}")


def test_unknown_platform_function_needs_a_runner() -> None:
    nope = East.platform("no_such_platform_fn", [IntegerType], IntegerType)
    f = East.function([IntegerType], IntegerType, lambda b, v: nope(v))
    with pytest.raises(InvalidPackage, match="no_such_platform_fn"):
        e3.task("t", [e3.input("x", IntegerType)], f)
    e3.task("t", [e3.input("x", IntegerType)], f, runner=["east-py", "run", "-p", "mine"])


def test_cycles_are_refused() -> None:
    # The authoring API cannot express a cycle (a task's inputs exist before it), so
    # check the validation the package build runs, on a hand-made object.

    store = MemoryObjectStore()
    cmd = store.put(east_ir.east_runner_command(["east-py", "run"]))
    out_a, out_b = ("tasks", "a", "output"), ("tasks", "b", "output")
    ta = store.put(task_record.encode(task_record.TaskObject(cmd, (out_b,), out_a)))
    tb = store.put(task_record.encode(task_record.TaskObject(cmd, (out_a,), out_b)))
    spec = DatasetSpec(IntegerType, False)
    structure = StructNode(
        {
            "tasks": StructNode(
                {"a": StructNode({"output": spec}), "b": StructNode({"output": spec})}
            )
        }
    )
    with pytest.raises(InvalidPackage, match="cycle"):
        package_check.validate_package(
            PackageObject({"a": ta, "b": tb}, structure, {}),
            _lookup(store),
            "p",
        )


def _lookup(store: MemoryObjectStore) -> Callable[[str], bytes | None]:
    """What validate_package looks objects up with: the store's bytes, or ``None``."""
    return lambda h: store.get(h) if store.has(h) else None


def _twenty_functions(store: MemoryObjectStore) -> PackageObject:
    """A package of 20 tasks, each with a function of its own, built into ``store``."""
    x = e3.input("x", IntegerType, default=0)
    tasks = [
        e3.task(f"t{i}", [x], East.function([IntegerType], IntegerType, lambda b, v, i=i: v + i))
        for i in range(20)
    ]
    return build(e3.package("many", "1.0.0", *tasks), store)[1]


def test_function_irs_sharing_a_header_have_their_type_read_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Comparing IRType (recursive) walks it, about 15 ms: a 10,000-task package of
    # distinct functions took minutes to import when each IR's header was read anew.
    store = MemoryObjectStore()
    pkg_obj = _twenty_functions(store)
    irs = {ref.hash for path, ref in pkg_obj.refs.items() if path[-1] == "function_ir"}
    assert len(irs) == 20
    reads: list[int] = []
    real = beast2.read_type
    monkeypatch.setattr(beast2, "read_type", lambda data, **kw: reads.append(1) or real(data, **kw))
    reachable = package_check.validate_package(pkg_obj, _lookup(store), "p")
    assert irs <= reachable
    assert len(reads) <= 2  # the IRs' one header, and x's default value


def test_a_decoded_package_compares_its_equal_declared_types_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Decoding gives each function IR dataset an IRType object of its own: compared
    # structurally each (10 ms), a 10,000-task package took 96 s to import.
    from e3.records import package as package_record

    store = MemoryObjectStore()
    pkg_obj = package_record.decode(package_record.encode(_twenty_functions(store)))
    compared: list[int] = []
    real = package_check.same_type
    monkeypatch.setattr(package_check, "same_type", lambda a, b: compared.append(1) or real(a, b))
    package_check.validate_package(pkg_obj, _lookup(store), "p")
    assert len(compared) <= 2  # the IRs' declared type once, and x's


def test_a_recursive_declared_type_unequal_to_the_header_is_refused() -> None:
    # Declared types are grouped by equality: one dataset declaring another recursive
    # type for a function IR must not share the verdict of the IRType datasets.
    from e3.codec.types import EastTypeType
    from e3.records.dataset_ref import DatasetRef

    store = MemoryObjectStore()
    fn = East.function([IntegerType], IntegerType, lambda b, v: v + 1)
    ir_hash = store.put(east_ir.function_ir_bytes(fn))
    good, odd = DatasetSpec(IRType, False), DatasetSpec(EastTypeType, False)
    structure = StructNode({"f": StructNode({"a": good, "b": good, "c": odd})})
    refs = {("f", name): DatasetRef.of(ir_hash) for name in ("a", "b", "c")}
    with pytest.raises(InvalidPackage, match=r"value of \.f\.c has type .*declared"):
        package_check.validate_package(
            PackageObject({}, structure, refs),
            _lookup(store),
            "p",
        )


def test_a_value_with_a_known_header_is_still_checked_against_its_own_dataset() -> None:
    from e3.records.dataset_ref import DatasetRef

    store = MemoryObjectStore()
    one = store.put(beast2.encode(1, IntegerType))
    whole, text = DatasetSpec(IntegerType, True), DatasetSpec(StringType, True)
    structure = StructNode({"inputs": StructNode({"a": whole, "b": whole, "c": text})})
    refs = {("inputs", name): DatasetRef.of(one) for name in ("a", "b", "c")}
    with pytest.raises(InvalidPackage, match=r"value of \.inputs\.c has type .*declared"):
        package_check.validate_package(
            PackageObject({}, structure, refs),
            _lookup(store),
            "p",
        )
