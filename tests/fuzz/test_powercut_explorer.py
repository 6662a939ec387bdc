"""The power-cut explorer itself: does it catch a wrong write path, and spare a right one?

A test-only writer (``toy_writer.py``) saves a file three times through a
staging file and a rename, acknowledging each version, in right and wrong
ways. Each way is traced for real (strace) and every distinct crash state
the explorer builds is checked: the file holds the last acknowledged version
or the next one, never anything else (a torn, empty or older version).
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import pytest
from fuzz.powercut.crash import MODELS, Durability, Recording, distinct_states, walk
from fuzz.powercut.explore import record_command
from fuzz.powercut.ops import Op
from fuzz.powercut.recorder import Recorder
from fuzz.powercut.strace import TraceError

TOY = Path(__file__).with_name("toy_writer.py")

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


def _content(version: int) -> bytes:
    return f"version {version}\n".encode() * 600


def _record(tmp_path: Path, argv: list[str]) -> Recording:
    world, acks = tmp_path / "world", tmp_path / "acks"
    world.mkdir()
    acks.touch()
    argv = [a.replace("{world}", str(world)).replace("{acks}", str(acks)) for a in argv]
    return record_command(argv, world, acks, tmp_path / "trace")


def _toy(tmp_path: Path, mode: str) -> Recording:
    return _record(tmp_path, [sys.executable, str(TOY), mode, "{world}/saved", "{acks}"])


def _violations(rec: Recording, model: str) -> tuple[int, list[str]]:
    """(states checked, what went wrong in them) for the toy's promise."""
    problems: list[str] = []
    checked = 0
    for sel, state in distinct_states(rec, model, random.Random(7), limit=100):
        checked += 1
        acked = [op.payload["version"] for op in rec.ops[: sel.cut] if op.kind == "ack"]
        last = acked[-1] if acked else None
        allowed = {_content(last) if last is not None else None}
        nxt = 0 if last is None else last + 1
        if nxt < 3:
            allowed.add(_content(nxt))
        found = {rel: ino for rel, ino, _kind in walk(state)}
        got = bytes(state.data.get(found["saved"], b"")) if "saved" in found else None
        if got not in allowed:
            shown = "absent" if got is None else f"{len(got)} bytes {got[:12]!r}"
            problems.append(f"{sel.label}: saved is {shown}, acknowledged {last}")
    return checked, problems


@pytest.mark.parametrize("model", MODELS)
def test_a_correct_writer_survives_every_crash_state(tmp_path: Path, model: str) -> None:
    checked, problems = _violations(_toy(tmp_path, "correct"), model)
    assert problems == []
    assert checked >= 8  # the explorer did build states, not just the trivial one


@pytest.mark.parametrize("model", MODELS)
def test_a_rename_without_fsync_of_the_file_is_caught(tmp_path: Path, model: str) -> None:
    _, problems = _violations(_toy(tmp_path, "no-file-fsync"), model)
    assert problems, "a rename of unsynced data was not caught"
    assert any("0 bytes" in p or "bytes b'\\x00" in p for p in problems), problems


@pytest.mark.parametrize("model", MODELS)
def test_a_rename_without_fsync_of_the_directory_is_caught(tmp_path: Path, model: str) -> None:
    _, problems = _violations(_toy(tmp_path, "no-dir-fsync"), model)
    assert any("acknowledged 2" in p for p in problems), problems


@pytest.mark.parametrize("model", MODELS)
def test_syncfs_makes_everything_before_it_durable(tmp_path: Path, model: str) -> None:
    checked, problems = _violations(_toy(tmp_path, "syncfs"), model)
    assert problems == []
    assert checked >= 8


@pytest.mark.parametrize("model", MODELS)
def test_a_syncfs_before_the_rename_is_caught(tmp_path: Path, model: str) -> None:
    _, problems = _violations(_toy(tmp_path, "syncfs-early"), model)
    assert any("acknowledged 2" in p for p in problems), problems


def _op(index: int, kind: str, entry: int, exit_: int, **fields: object) -> Op:
    return Op(index, kind, entry, exit_, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", MODELS)
def test_a_sync_covers_what_completed_before_it_began_only(model: str) -> None:
    # create and write complete before the syncfs begins (cutoff 2); a second write
    # completes while the syncfs runs, on another thread: it is not covered.
    ops = [
        _op(0, "create", 1, 1, parent=1, name="f", ino=2),
        _op(1, "write", 2, 2, ino=2, offset=0, data=b"a"),
        _op(2, "write", 3, 5, ino=2, offset=1, data=b"b"),
        _op(3, "sync", 4, 6, scope="fs", cutoff=2),
    ]
    dur = Durability(Recording(1, {}, ops, frozenset()), model)
    assert dur.durable_at[:3] == [3, 3, dur.durable_at[2]]
    assert dur.durable_at[2] > len(ops)


def test_posix_keeps_a_new_name_only_after_its_directory_is_fsynced() -> None:
    ops = [
        _op(0, "create", 1, 1, parent=1, name="f", ino=2),
        _op(1, "write", 2, 2, ino=2, offset=0, data=b"a"),
        _op(2, "sync", 3, 3, scope="file", ino=2, cutoff=2, touched=0),
        _op(3, "sync", 4, 4, scope="dir", ino=1, cutoff=3, touched=0),
    ]
    rec = Recording(1, {}, ops, frozenset())
    posix, ext4 = Durability(rec, "posix"), Durability(rec, "ext4")
    assert posix.durable_at[1] == 2  # the data, by the file's fsync
    assert posix.durable_at[0] == 3  # the name, only by the directory's
    assert ext4.forced(3) == 0  # ext4's journal commit at the file's fsync keeps the name


def test_the_recorder_refuses_a_write_it_could_not_see(tmp_path: Path) -> None:
    # A write through a shared mapping makes no write call: the model would miss it,
    # and the comparison with the disk at the end says so.
    script = (
        "import mmap, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
        "os.ftruncate(fd, 4096)\n"
        "m = mmap.mmap(fd, 4096)\n"
        "m[:5] = b'hello'\n"
        "m.flush()\n"
    )
    with pytest.raises(TraceError, match="differ in the bytes"):
        _record(tmp_path, [sys.executable, "-c", script, "{world}/mapped"])


def _hex(text: str) -> str:
    return "".join(f"\\x{b:02x}" for b in text.encode())


def test_a_close_printed_after_another_threads_open_of_its_number_spares_it(
    tmp_path: Path,
) -> None:
    # Thread 11 closes fd 5 while thread 12 opens a file and gets number 5 again; strace
    # prints the close's exit last. The write through the new fd 5 must land in the new file.
    world = tmp_path / "world"
    world.mkdir()
    (world / "old").write_bytes(b"")
    acks = tmp_path / "acks"
    acks.touch()
    old, new = _hex(str(world / "old")), _hex(str(world / "new"))
    lines = [
        f'11 openat(AT_FDCWD<{_hex(str(tmp_path))}>, "{old}", O_WRONLY|O_CLOEXEC) = 5<{old}>',
        "11 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_THREAD}, 88) = 12",
        f"11 close(5<{old}> <unfinished ...>",
        f'12 openat(AT_FDCWD<{_hex(str(tmp_path))}>, "{new}", O_WRONLY|O_CREAT|O_EXCL, 0644)'
        f" = 5<{new}>",
        "11 <... close resumed>) = 0",
        f'12 write(5<{new}>, "{_hex("data")}", 4) = 4',
    ]
    trace = tmp_path / "trace"
    trace.write_text("\n".join(lines) + "\n")
    rec = Recorder(world, acks)  # the world before the calls
    (world / "new").write_bytes(b"data")  # and after them
    rec.load(trace)  # compares the model with the disk: "new" must hold the write
    assert [op.kind for op in rec.ops] == ["create", "write"]
