"""Regressions found by the power-cut explorer, checked on the crash states that showed them.

Each test traces a real workload (strace) and rebuilds the crash states that
exposed a defect, then checks them: acknowledged commands survive the strictest
state each file-system model allows, and records written without their own
fsync can no longer be found empty.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz.powercut.crash import (
    MODELS,
    Durability,
    file_bytes,
    materialise,
    replay,
    sample,
    walk,
)
from fuzz.powercut.explore import record_command, trace_workload
from fuzz.powercut.workloads import E3

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed"),
]


def _e3(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "E3_FSYNC": "0"}
    return subprocess.run([E3, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("model", MODELS)
def test_acknowledged_create_import_deploy_and_set_survive_a_power_cut(
    tmp_path: Path, model: str
) -> None:
    # Found: `repo create` synced nothing; a new directory (objects/<xx>/ for a set's value,
    # packages/<name>/ for an import) was never made durable in its parent, so the fsynced
    # file inside it could vanish with it. Each state is the strictest the model allows
    # right after an acknowledgement: only what was synced, nothing else.
    traced = trace_workload("create", tmp_path / "w", tasks=4, seed=3)
    ops = traced.recording.ops
    dur = Durability(traced.recording, model)
    acks = [op for op in ops if op.kind == "ack"]
    assert [a.payload["kind"] for a in acks if a.payload] == ["repo", "package", "deploy", "set"]
    for ack in acks:
        state = replay(traced.recording, sample(dur, ack.index + 1, random.Random(1), 0.0, 0.0))
        where = tmp_path / f"state-{ack.index}"
        materialise(state, where)
        repo = str(where / "repo")
        verify = _e3("repo", "verify", repo, "--json")
        assert verify.returncode == 0, f"after {ack.payload}: {verify.stdout}{verify.stderr}"
        kind = ack.payload["kind"] if ack.payload else ""
        if kind == "package":
            listed = json.loads(_e3("package", "list", repo, "--json").stdout)
            assert [p["name"] for p in listed] == ["pc"]
        if kind == "set":
            got = _e3("get", repo, "ws.inputs.a")
            assert got.stdout.strip() == str(ack.payload["value"]), got.stderr


def test_run_records_and_the_deployment_record_are_never_left_empty(tmp_path: Path) -> None:
    # Found: a run wrote its records (and the workspace's state, naming the run) without an
    # fsync; ext4 keeps the rename and may lose the bytes, leaving an empty run record
    # (`verify` exit 7) or an empty workspace state: the workspace read as not deployed.
    # Every cut, with every rename kept and no unsynced byte.
    traced = trace_workload("start", tmp_path / "w", tasks=6, seed=5)
    dur = Durability(traced.recording, "ext4")
    records = 0
    for cut in range(len(traced.recording.ops) + 1):
        state = replay(traced.recording, sample(dur, cut, random.Random(1), 0.0, 1.0))
        for rel, ino, kind in walk(state):
            if kind != "f":
                continue
            if rel.startswith("repo/dataflows/") and rel.endswith(".beast2"):
                records += 1
                assert state.data.get(ino), f"cut {cut}: {rel} is empty"
            if rel == "repo/workspaces/ws.beast2":
                assert state.data.get(ino), f"cut {cut}: the workspace's state is empty"
    assert records > 0


def test_a_deploy_marker_never_survives_without_the_refs_it_vouches_for(tmp_path: Path) -> None:
    # Found (long run, seed 30): the `.deploy-state` marker of a new workspace's
    # `.data-new/` was written before the sync that made its refs durable. A cut there
    # could keep the marker and lose the refs; with no `data/` yet, readers took
    # `.data-new/` for the workspace's data: deployed, with every input unset.
    # POSIX lets any unsynced op survive alone, so sample many states at every cut
    # of the deploy and look for a marker whose refs are not all there.
    traced = trace_workload("create", tmp_path / "w", tasks=4, seed=3)
    ops = traced.recording.ops
    begin = next(op.index for op in ops if op.kind == "begin" and op.payload["kind"] == "deploy")
    ack = next(op.index for op in ops if op.kind == "ack" and op.payload["kind"] == "deploy")
    dur = Durability(traced.recording, "posix")
    deployed = replay(traced.recording, sample(dur, ack + 1, random.Random(0), 1.0, 1.0))
    data, new = "repo/workspaces/ws/data/", "repo/workspaces/ws/.data-new/"
    refs = {
        rel.removeprefix(data): content
        for rel, content in file_bytes(deployed).items()
        if rel.startswith(data)
    }
    assert len(refs) > 4
    rng, markers = random.Random(7), 0
    for cut in range(begin, ack + 1):
        for keep in (0.2, 0.5, 0.8) * 10:
            state = replay(traced.recording, sample(dur, cut, rng, keep, 0.0))
            files = file_bytes(state)
            if f"{data}.deploy-state" in files or not files.get(f"{new}.deploy-state"):
                continue
            markers += 1
            for rel, content in refs.items():
                if rel != ".deploy-state":
                    assert files.get(new + rel) == content, f"cut {cut} keep {keep}: {rel} lost"
    assert markers > 0  # the window where readers would trust `.data-new/` was reached


_SAME_VALUE_TWICE = """
import json, os, sys
from pathlib import Path
from e3.store.objects import LocalObjectStore
store = LocalObjectStore(Path(sys.argv[1]) / "objects")
data = b"a value a run computed, then a user set" * 100
store.put(data, sync=False)  # a run's output: synced later, with its batch
h = store.put(data)  # a set of the same value: acknowledged once it returns
ack = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND)
os.write(ack, b"ack " + json.dumps({"kind": "put", "hash": h}).encode() + b"\\n")
"""


@pytest.mark.parametrize("model", MODELS)
def test_a_synced_put_of_a_present_object_makes_it_durable(tmp_path: Path, model: str) -> None:
    # Found (seed 32, reactive, POSIX): a run wrote an output object before its batch's
    # sync; a `set` of an input to that same value found the bytes in place and returned
    # without syncing them, then committed its ref. A cut before the run's sync kept the
    # ref and lost the object: `verify` exit 7, the acknowledged value unreadable.
    world, acks = tmp_path / "world", tmp_path / "acks"
    (world / "objects").mkdir(parents=True)
    acks.touch()
    script = tmp_path / "same_value_twice.py"
    script.write_text(_SAME_VALUE_TWICE)
    recording = record_command(
        [sys.executable, str(script), str(world), str(acks)], world, acks, tmp_path / "trace"
    )
    ack = next(op for op in recording.ops if op.kind == "ack")
    assert ack.payload is not None
    h = ack.payload["hash"]
    # The strictest state right after the acknowledgement: only what was synced.
    state = replay(
        recording, sample(Durability(recording, model), ack.index + 1, random.Random(1), 0.0, 0.0)
    )
    files = file_bytes(state)
    stored = files.get(f"objects/{h[:2]}/{h[2:]}.beast2")
    assert stored is not None and hashlib.sha256(stored).hexdigest() == h, sorted(files)
