"""A test-only writer for the power-cut explorer's own tests: right and wrong ways to save.

``python toy_writer.py MODE TARGET ACKS`` saves three versions of TARGET, each
through a staging file renamed into place, and after each one writes an
``ack {"version": i}`` marker to ACKS (what a user would be told). Modes:

* ``correct``: write, fsync the file, rename, fsync the directory;
* ``no-file-fsync``: the rename without the fsync of the file before it;
* ``no-dir-fsync``: no fsync of the directory after the rename;
* ``syncfs``: no fsync at all: a ``syncfs`` before the rename (the data) and one
  after it (the rename);
* ``syncfs-early``: only the ``syncfs`` before the rename.

Versions are 6 KiB, two pages, so a torn version can be half old, half lost.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys


def syncfs(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs failed")
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def content(version: int) -> bytes:
    return f"version {version}\n".encode() * 600


def main() -> None:
    mode, target, acks = sys.argv[1:4]
    directory = os.path.dirname(target)
    ack = os.open(acks, os.O_WRONLY | os.O_APPEND)
    for version in range(3):
        tmp = f"{target}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, content(version))
        if mode in ("correct", "no-dir-fsync"):
            os.fsync(fd)
        os.close(fd)
        if mode in ("syncfs", "syncfs-early"):
            syncfs(directory)
        os.rename(tmp, target)
        if mode in ("correct", "no-file-fsync"):
            fsync_dir(directory)
        if mode == "syncfs":
            syncfs(directory)
        os.write(ack, b"ack " + json.dumps({"kind": "toy", "version": version}).encode() + b"\n")
    os.close(ack)


if __name__ == "__main__":
    main()
