"""Damaged objects: never served as cache hits, replaced on the next write, repaired on request.

A flipped byte in a task output's object used to stay forever: ``e3 start``
reported the task cached, ``--force`` recomputed the same bytes and kept the
damaged file (the write deduplicated against it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from e3.store.repository import open_repository
from tests_support import run_cli


def _deployed(tmp_path: Path, build_example) -> Path:
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    assert run_cli("package", "import", repo, build_example("diamond")).code == 0
    assert run_cli("workspace", "deploy", repo, "ws", "diamond").code == 0
    assert run_cli("start", repo, "ws").code == 0
    return repo


def _object_file(repo: Path, dataset: str) -> tuple[str, Path]:
    h = json.loads(run_cli("status", repo, dataset, "--json").out)["hash"]
    return h, repo / "objects" / h[:2] / f"{h[2:]}.beast2"


def _flip_last_byte(path: Path) -> bytes:
    original = path.read_bytes()
    os.chmod(path, 0o644)
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    return original


def test_damaged_output_is_not_a_cache_hit_and_is_rewritten(tmp_path: Path, build_example) -> None:
    repo = _deployed(tmp_path, build_example)
    _h, f = _object_file(repo, "ws.tasks.merge")
    original = _flip_last_byte(f)
    assert run_cli("get", repo, "ws.tasks.merge").code == 7
    again = run_cli("start", repo, "ws")
    assert again.code == 0, again.err
    assert "[DONE] merge" in again.out  # recomputed, not reported cached
    assert f.read_bytes() == original  # the write replaced the damaged file
    assert run_cli("get", repo, "ws.tasks.merge").out.strip() == "65"
    assert run_cli("repo", "verify", repo).code == 0


def test_forced_run_replaces_a_damaged_object(tmp_path: Path, build_example) -> None:
    repo = _deployed(tmp_path, build_example)
    _h, f = _object_file(repo, "ws.tasks.left")
    original = _flip_last_byte(f)
    assert run_cli("start", repo, "ws", "--force").code == 0
    assert f.read_bytes() == original
    assert run_cli("repo", "verify", repo).code == 0


def test_put_of_existing_bytes_repairs_a_damaged_file(tmp_path: Path, build_example) -> None:
    repo = _deployed(tmp_path, build_example)
    _h, f = _object_file(repo, "ws.tasks.right")
    original = _flip_last_byte(f)
    store = open_repository(repo)
    store.objects.put(original)
    assert f.read_bytes() == original


def test_verify_repair_recomputes_outputs_and_names_what_it_cannot(
    tmp_path: Path, build_example
) -> None:
    repo = _deployed(tmp_path, build_example)
    _out, out_file = _object_file(repo, "ws.tasks.merge")
    original = _flip_last_byte(out_file)
    _a, a_file = _object_file(repo, "ws.inputs.a")
    _flip_last_byte(a_file)
    checked = run_cli("repo", "verify", repo)
    assert checked.code == 7
    repaired = run_cli("repo", "verify", repo, "--repair")
    assert repaired.code == 7  # the input cannot be recomputed: still a problem
    assert "Repaired object" in repaired.out and "recomputed by task merge" in repaired.out
    assert "cannot repair object" in repaired.out and "ws.inputs.a" in repaired.out
    assert "set it again" in repaired.out
    assert out_file.read_bytes() == original
    assert run_cli("set", repo, "ws.inputs.a", _east(tmp_path, "10")).code == 0
    assert run_cli("repo", "verify", repo).code == 0


def _east(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "v.east"
    p.write_text(text)
    return p
