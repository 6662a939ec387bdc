"""Golden bytes: the SHA-256 of the exact Beast2 bytes of known records and values.

Object hashes, cache keys and every file e3 writes are these bytes, so they are an
on-disk format. A failure here means the bytes changed — because a record's East
type, field order, an encoder detail or the pinned east-py changed. That is never a
refactoring side effect to "fix" by pasting the new hash: changing the format
re-keys every stored object and cache entry, so it must be a deliberate decision
(with a migration story), and only then are the frozen hex values updated.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from east import East

from e3.codec import beast2
from e3.codec.ir import function_ir_bytes
from e3.codec.types import (
    ArrayType,
    BooleanType,
    DateTimeType,
    DictType,
    FloatType,
    IntegerType,
    OptionType,
    StringType,
    StructType,
    some,
)
from e3.records import dataflow, dataset_ref, execution, lock, package, task, workspace
from e3.records.dataflow import DataflowRun, RunSummary, TaskExecution
from e3.records.dataset_ref import DatasetRef
from e3.records.execution import ExecutionStatus
from e3.records.lock import LockState, ProcessHolder
from e3.records.package import PackageObject
from e3.records.structure import DatasetSpec, StructNode
from e3.records.task import TaskObject
from e3.records.workspace import WorkspaceState

T0 = datetime(2024, 1, 15, 10, 30, 0, 123000, tzinfo=UTC)
T1 = datetime(2024, 1, 15, 10, 31, 2, 456000, tzinfo=UTC)
T2 = datetime(2024, 1, 15, 11, 0, 0, 0, tzinfo=UTC)

H_A, H_B, H_C, H_D, H_E, H_F = ("a" * 64, "b" * 64, "c" * 64, "d" * 64, "e" * 64, "f" * 64)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------
# One fully specified instance per record kind.
# ---------------------------------------------------------------------------------------

STRUCTURE = StructNode(
    {
        "inputs": StructNode(
            {
                "x": DatasetSpec(IntegerType, True),
                "rows": DatasetSpec(
                    ArrayType(StructType([("id", IntegerType), ("score", FloatType)])), True
                ),
            }
        ),
        "tasks": StructNode(
            {
                "double": DatasetSpec(IntegerType, False),
                "summary": DatasetSpec(DictType(StringType, OptionType(FloatType)), False),
            }
        ),
    }
)

RECORDS: dict[str, tuple[Any, Callable[[Any], bytes], Callable[[bytes], Any], str]] = {
    "dataset_ref/value": (
        DatasetRef.of(H_A, {".inputs.x": H_B, ".inputs.rows": H_C}),
        dataset_ref.encode,
        dataset_ref.decode,
        "56f3d6f74b25a3f6cd0bb70fcbda02e7715879ebd5d6505a564f227beb99eb77",
    ),
    "dataset_ref/null": (
        DatasetRef("null", None, {".inputs.x": H_B}),
        dataset_ref.encode,
        dataset_ref.decode,
        "3d6bc5dcea85f41e8b1ba176520a346ee4b5adb6a46b1175341a5f60c4207f10",
    ),
    "dataset_ref/unassigned": (
        DatasetRef.unassigned(),
        dataset_ref.encode,
        dataset_ref.decode,
        "d13b572df01500ae6839b1e4b1e728b3d7e89778551b2d4c2b388019ff0dd8a7",
    ),
    "package (with structure)": (
        PackageObject(
            tasks={"double": H_C, "summary": H_D},
            structure=STRUCTURE,
            refs={
                ("inputs", "x"): DatasetRef.of(H_A),
                ("inputs", "rows"): DatasetRef.of(H_B),
                ("tasks", "double"): DatasetRef.unassigned(),
                ("tasks", "summary"): DatasetRef("null", None, {".inputs.rows": H_B}),
            },
        ),
        package.encode,
        package.decode,
        "595b6102337015d9967f681b682ae2fb34a480eac2bad97152a55aea003b7c7a",
    ),
    "task": (
        TaskObject(
            command_ir=H_E,
            inputs=(("inputs", "x"), ("inputs", "rows")),
            output=("tasks", "double"),
        ),
        task.encode,
        task.decode,
        "1db21d41f59a2bcb060ff9fb329274e43a84207d802ce8df2ece80ad4bc82d8e",
    ),
    "workspace": (
        WorkspaceState("demo", "1.2.0", H_F, T0, "run-0001"),
        workspace.encode,
        workspace.decode,
        "7428141a6bdb3b99f8a3044cfa9109aaf99a2f2eb08ca292a73f501f818190b4",
    ),
    "execution/running": (
        ExecutionStatus(
            "running",
            "exec-0001",
            (H_A, H_B),
            T0,
            pid=4242,
            pid_start_time=1705314600,
            boot_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        ),
        execution.encode,
        execution.decode,
        "68739edaccf49fdeff391d17cde53025b540a2f6a573b7b548254f2d0ddbaf30",
    ),
    "execution/success": (
        ExecutionStatus("success", "exec-0002", (H_A, H_B), T0, T1, output_hash=H_C),
        execution.encode,
        execution.decode,
        "c766ea3cb42356db50d71b3338b8a01eb3bc4ccc513d1e19a99a0355d400f47c",
    ),
    "execution/failed": (
        ExecutionStatus("failed", "exec-0003", (H_A,), T0, T1, exit_code=3),
        execution.encode,
        execution.decode,
        "49b74f7209da8281b0378979d851141fa516fa16156d6a89d0ddd8617ecb31f9",
    ),
    "execution/error": (
        ExecutionStatus("error", "exec-0004", (), T0, T1, message="command not found: ✗"),
        execution.encode,
        execution.decode,
        "5b056f5e4643b222c2fbbe339d3e27068f340879647f389e9eb99c7fe3b92d75",
    ),
    # Executions that ran on a cluster worker: the worker form of the record (a trailing
    # ``worker`` field in each case). Added deliberately with the Dask runner; the forms
    # above, without a worker, are the reference's and must not change.
    "execution/success (worker)": (
        ExecutionStatus(
            "success",
            "exec-0005",
            (H_A, H_B),
            T0,
            T1,
            output_hash=H_C,
            worker="tcp://10.0.0.7:40123",
        ),
        execution.encode,
        execution.decode,
        "ed51f0482b887614b503f27ca477539bf4a3015301059641944f889247e8c318",
    ),
    "execution/failed (worker)": (
        ExecutionStatus(
            "failed", "exec-0006", (H_A,), T0, T1, exit_code=3, worker="tcp://10.0.0.7:40123"
        ),
        execution.encode,
        execution.decode,
        "9fceb9ccc6848ea82c97a10905893622510b085c1a935d6fe4f82c6b9fe00143",
    ),
    "execution/error (worker, 'worker' in the message)": (
        ExecutionStatus(
            "error",
            "exec-0007",
            (),
            T0,
            T1,
            message="worker of the error",
            worker="tcp://[::1]:9000",
        ),
        execution.encode,
        execution.decode,
        "abe107050788666a3f7995f66ddc18f5698ea1aa64cd73ca9ba759ccaf060424",
    ),
    "lock": (
        LockState(
            "dataflow",
            ProcessHolder(4242, "0f1e2d3c", 1705314600, 'e3 start "demo"').to_text(),
            T0,
            T2,
        ),
        lock.encode,
        lock.decode,
        "e881e942df76848c648d0ff73c9fff062db61177f692cab5b1db10d7cd2dc4ab",
    ),
    "dataflow": (
        DataflowRun(
            run_id="run-0002",
            workspace="demo",
            package_ref="demo@1.2.0",
            started_at=T0,
            status="failed",
            completed_at=T1,
            failed_task="summary",
            error="exit code 3",
            input_versions={".inputs.x": H_A, ".inputs.rows": H_B},
            output_versions={".tasks.double": H_C},
            task_executions={
                "double": TaskExecution("exec-0002", True, {".inputs.x": H_A}, 2),
                "summary": TaskExecution("exec-0003", False, {".inputs.rows": H_B}, 1),
            },
            summary=RunSummary(total=2, completed=1, cached=1, failed=1, skipped=0, reexecuted=0),
        ),
        dataflow.encode,
        dataflow.decode,
        "dfbbfa4d2411515c3f3f0cb97cd8b2f7ab3b0f238641568271c4f23332e0470c",
    ),
}


@pytest.mark.parametrize("name", list(RECORDS))
def test_record_bytes_are_frozen(name: str) -> None:
    record, encode, decode, frozen = RECORDS[name]
    data = encode(record)
    assert sha256(data) == frozen, f"{name}: on-disk bytes changed"
    assert decode(data) == record
    assert encode(decode(data)) == data


# ---------------------------------------------------------------------------------------
# Plain values and function IR.
# ---------------------------------------------------------------------------------------

SMALL_STRUCT_TYPE = StructType(
    [
        ("name", StringType),
        ("count", IntegerType),
        ("ratio", FloatType),
        ("ok", BooleanType),
        ("at", DateTimeType),
        ("tags", ArrayType(StringType)),
        ("best", OptionType(IntegerType)),
    ]
)
SMALL_STRUCT = {
    "name": "widget",
    "count": -7,
    "ratio": 0.25,
    "ok": True,
    "at": T0,
    "tags": ["a", "β"],
    "best": some(3),
}


def test_integer_bytes_are_frozen() -> None:
    data = beast2.encode(42, IntegerType)
    assert sha256(data) == "1a9a54bbd975dff1c0855d16629aa4b10b313c4d3ab170bfee267d8fd3082138"
    assert beast2.decode(data, IntegerType) == 42


def test_struct_bytes_are_frozen() -> None:
    data = beast2.encode(SMALL_STRUCT, SMALL_STRUCT_TYPE)
    assert sha256(data) == "8559d64636bcc1d5be34890428bff68a7964f5eed98766fce363eb082c37f4ce"
    assert beast2.encode(beast2.decode(data, SMALL_STRUCT_TYPE), SMALL_STRUCT_TYPE) == data


def test_function_ir_bytes_are_frozen() -> None:
    fn = East.function([IntegerType], IntegerType, lambda b, x: x + 1)
    assert (
        sha256(function_ir_bytes(fn))
        == "8ed822c9cdcc9f0cc3b69d631a335a24a1fef7f8441789928eab7b840744267d"
    )


def test_function_ir_ignores_parameter_names_but_not_the_body() -> None:
    base = function_ir_bytes(East.function([IntegerType], IntegerType, lambda b, x: x + 1))
    renamed = function_ir_bytes(East.function([IntegerType], IntegerType, lambda b, y: y + 1))
    changed = function_ir_bytes(East.function([IntegerType], IntegerType, lambda b, x: x + 2))
    assert renamed == base
    assert changed != base


def _reversed_dict(d: dict[Any, Any]) -> dict[Any, Any]:
    return dict(reversed(list(d.items())))


def test_record_bytes_do_not_depend_on_python_dict_order() -> None:
    pkg = RECORDS["package (with structure)"][0]
    shuffled_pkg = PackageObject(
        tasks=_reversed_dict(pkg.tasks),
        structure=StructNode(
            {
                name: StructNode(_reversed_dict(node.children))
                for name, node in reversed(list(pkg.structure.children.items()))
            }
        ),
        refs=_reversed_dict(pkg.refs),
    )
    assert package.encode(shuffled_pkg) == package.encode(pkg)

    run = RECORDS["dataflow"][0]
    shuffled_run = dataclasses.replace(
        run,
        input_versions=_reversed_dict(run.input_versions),
        task_executions=_reversed_dict(run.task_executions),
    )
    assert dataflow.encode(shuffled_run) == dataflow.encode(run)


def test_a_local_record_mentioning_a_worker_keeps_the_reference_form() -> None:
    local = ExecutionStatus("error", "exec-0008", (), T0, T1, message="the worker said no")
    data = execution.encode(local)
    assert b"worker" in data  # in the message, not the type
    assert execution.decode(data) == local
    assert execution.decode(data).worker is None


@pytest.mark.parametrize("status", ["running", "completed", "failed", "cancelled", "interrupted"])
def test_the_status_alone_reads_as_the_whole_record_does(status: str) -> None:
    run = DataflowRun(
        "01a23652-b027-7605-8388-9355c4fbdb92",
        "ws",
        "pc@1.0.0",
        datetime(2026, 12, 2, tzinfo=UTC),
        status,  # type: ignore[arg-type]
        failed_task="t1" if status == "failed" else None,
        error={"failed": "boom", "interrupted": dataflow.INTERRUPTED}.get(status),
        task_executions={"t1": TaskExecution("e1", cached=False)},
    )
    data = dataflow.encode(run)
    assert dataflow.decode(data).status == status
    assert dataflow.decode_status(data) == status
