"""atomic.read_bytes: whole content, or None for what is not a readable file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e3.base import atomic
from e3.errors import StorageError


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 16383, 16384, 16385, 65537, 3 << 20])
def test_reads_every_byte(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    assert atomic.read_bytes(tmp_path / "f") == data


def test_missing_files_and_directories_read_as_none(tmp_path: Path) -> None:
    assert atomic.read_bytes(tmp_path / "absent") is None
    assert atomic.read_bytes(tmp_path) is None


def test_other_failures_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(StorageError, match="cannot read .*file/below"):
        atomic.read_bytes(tmp_path / "file" / "below")
