"""A slot's working directory: input copies kept between tasks, and nothing written elsewhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from e3.dataflow.slots import SlotDir


@pytest.fixture
def objects(tmp_path: Path) -> dict[str, str]:
    """Stand-ins for stored objects (read-only, like the real ones)."""
    out = {}
    for name, data in {"long": b"L" * 10_000, "short": b"s", "other": b"other"}.items():
        p = tmp_path / f"{name}.beast2"
        p.write_bytes(data)
        p.chmod(0o444)
        out[name] = str(p)
    return out


@pytest.fixture
def slot(tmp_path: Path) -> Iterator[SlotDir]:
    s = SlotDir(tmp_path / "scratch" / "slot-0")
    yield s
    s.close()


def _inode(path: str) -> int:
    return os.stat(path).st_ino


def test_copies_are_exact_and_reused_in_place(slot: SlotDir, objects: dict[str, str]) -> None:
    [first] = slot.stage([objects["long"]])
    assert Path(first).read_bytes() == b"L" * 10_000
    ino = _inode(first)
    slot.clean()
    [again] = slot.stage([objects["short"]])  # shorter content: the rest is cut off
    assert again == first
    assert Path(again).read_bytes() == b"s"
    assert _inode(again) == ino
    assert os.stat(again).st_mode & 0o777 == 0o644


def test_clean_keeps_only_the_input_copies(slot: SlotDir, objects: dict[str, str]) -> None:
    [copy] = slot.stage([objects["short"]])
    (slot.path / "litter").write_bytes(b"x")
    (slot.path / "sub" / "deeper").mkdir(parents=True)
    slot.clean()
    assert sorted(os.listdir(slot.path)) == ["input-0.beast2"]
    assert slot.stage([]) == []
    assert os.listdir(slot.path) == []
    assert not os.path.exists(copy)


def test_fewer_inputs_drop_the_extra_copies(slot: SlotDir, objects: dict[str, str]) -> None:
    slot.stage([objects["short"], objects["other"], objects["long"]])
    slot.clean()
    slot.stage([objects["other"]])
    assert os.listdir(slot.path) == ["input-0.beast2"]
    assert (slot.path / "input-0.beast2").read_bytes() == b"other"


def test_a_hard_link_made_by_a_task_is_not_written_through(
    slot: SlotDir, objects: dict[str, str], tmp_path: Path
) -> None:
    [copy] = slot.stage([objects["short"]])
    outside = tmp_path / "outside"
    os.link(copy, outside)  # the task links its input copy somewhere
    slot.clean()
    slot.stage([objects["long"]])
    assert outside.read_bytes() == b"s"
    assert Path(copy).read_bytes() == b"L" * 10_000


def test_a_symlink_left_at_an_input_path_is_not_followed(
    slot: SlotDir, objects: dict[str, str]
) -> None:
    [copy] = slot.stage([objects["short"]])
    os.unlink(copy)
    os.symlink(objects["other"], copy)  # points at a "stored object"
    slot.clean()
    slot.stage([objects["long"]])
    assert Path(objects["other"]).read_bytes() == b"other"
    assert not os.path.islink(copy)
    assert Path(copy).read_bytes() == b"L" * 10_000


def test_a_read_only_copy_is_made_writable_again(slot: SlotDir, objects: dict[str, str]) -> None:
    [copy] = slot.stage([objects["short"]])
    os.chmod(copy, 0o400)
    slot.clean()
    slot.stage([objects["other"]])
    assert Path(copy).read_bytes() == b"other"
    assert os.stat(copy).st_mode & 0o777 == 0o644


def test_a_working_directory_replaced_by_a_symlink_is_never_written_or_emptied(
    slot: SlotDir, objects: dict[str, str], tmp_path: Path
) -> None:
    slot.stage([objects["short"]])
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_bytes(b"keep")
    (victim / "input-0.beast2").write_bytes(b"keep too")
    os.rename(slot.path, tmp_path / "moved-away")
    os.symlink(victim, slot.path)  # the task swaps its cwd for a link elsewhere
    slot.clean()
    [copy] = slot.stage([objects["other"]])
    slot.clean()
    assert sorted(os.listdir(victim)) == ["input-0.beast2", "precious"]
    assert (victim / "input-0.beast2").read_bytes() == b"keep too"
    assert not os.path.islink(slot.path)
    assert Path(copy).read_bytes() == b"other"


def test_a_removed_working_directory_is_made_again(slot: SlotDir, objects: dict[str, str]) -> None:
    slot.stage([objects["short"]])
    for name in os.listdir(slot.path):
        os.unlink(slot.path / name)
    os.rmdir(slot.path)
    [copy] = slot.stage([objects["other"]])
    assert Path(copy).read_bytes() == b"other"
