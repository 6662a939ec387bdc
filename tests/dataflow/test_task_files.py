"""What a shell task finds on disk: private input copies in an otherwise empty cwd, no output."""

from __future__ import annotations

from pathlib import Path

from east import IntegerType

import e3
from e3.sdk import Package
from tests_support import export_to, run_cli


def _setup(tmp_path: Path, pkg: Package) -> Path:
    repo = tmp_path / "repo"
    for args in (
        ("repo", "create", repo),
        ("package", "import", repo, export_to(pkg, tmp_path)),
        ("workspace", "deploy", repo, "ws", pkg.name),
    ):
        r = run_cli(*args)
        assert r.code == 0, f"e3 {args}: {r.err}"
    return repo


def _package(*commands: str) -> Package:
    x = e3.input("x", IntegerType, default=5)
    tasks = [e3.custom_task(f"t{i}", [x], IntegerType, c) for i, c in enumerate(commands)]
    return e3.package("files", "1.0.0", *tasks)


def test_a_task_that_overwrites_its_input_leaves_the_stored_object_intact(tmp_path: Path) -> None:
    repo = _setup(
        tmp_path,
        _package(
            "cp {inputs[0]} {output} && chmod u+w {inputs[0]} && echo junk > {inputs[0]}",
            "cp {inputs[0]} {output}",
            "cp {inputs[0]} {output}",
        ),
    )
    stored = {p: p.read_bytes() for p in (repo / "objects").rglob("*") if p.is_file()}
    r = run_cli("start", repo, "ws", "--concurrency", "1")
    assert r.code == 0, r.out + r.err
    for name in ("inputs.x", "tasks.t0.output", "tasks.t1.output", "tasks.t2.output"):
        assert run_cli("get", repo, f"ws.{name}").out.strip() == "5", name
    assert all(p.read_bytes() == data for p, data in stored.items())
    assert run_cli("repo", "verify", repo).code == 0


def test_the_output_path_is_free_and_the_cwd_clean_when_a_task_starts(tmp_path: Path) -> None:
    # One slot: every task runs where the one before it ran and left files behind.
    check = (
        'test ! -e {output} && test "$(ls -A)" = input-0.beast2 && touch litter '
        "&& cp {inputs[0]} {output}"
    )
    repo = _setup(tmp_path, _package(check, check, check))
    r = run_cli("start", repo, "ws", "--concurrency", "1")
    assert r.code == 0, r.out + r.err
    assert r.out.count("[DONE]") == 3


def test_a_directory_at_the_output_path_fails_only_that_task(tmp_path: Path) -> None:
    repo = _setup(
        tmp_path,
        _package("mkdir {output}", "cp {inputs[0]} {output}"),
    )
    r = run_cli("start", repo, "ws", "--concurrency", "1", "--keep-going")
    assert r.code != 0
    assert "wrote a directory, not a file, at its output path" in r.out + r.err
    assert run_cli("get", repo, "ws.tasks.t1.output").out.strip() == "5"


def test_a_task_that_swaps_its_cwd_for_a_symlink_cannot_make_e3_delete_elsewhere(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_bytes(b"keep")
    swap = (
        'cp {inputs[0]} {output} && d="$PWD" && cd .. && mv "$d" "$d.away" '
        f'&& ln -s {victim} "$d"'
    )
    repo = _setup(tmp_path, _package(swap, "cp {inputs[0]} {output}"))
    r = run_cli("start", repo, "ws", "--concurrency", "1")
    assert r.code == 0, r.out + r.err
    assert sorted(p.name for p in victim.iterdir()) == ["precious"]
    assert run_cli("get", repo, "ws.tasks.t1.output").out.strip() == "5"
