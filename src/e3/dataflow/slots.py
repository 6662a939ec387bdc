"""A concurrency slot's working directory: where its tasks run, one after another.

Shell tasks find private copies of their inputs there (``input-0.beast2``, …),
so a task may change them without harming the stored objects. The copies are
files the slot keeps between tasks: the next task's inputs are written over
them in place, instead of one file deleted and one created per input and task
(on ext4 without a journal a freed inode is skipped by the allocator for a
minute or more, so churn makes every later file creation slower). A kept file
is reused only while it is still the regular file the slot created, with no
other link to it; anything else a task leaves behind is removed after it.

Every operation goes through a descriptor of the directory the slot created,
so a task that replaces its working directory (with a symlink into the
repository, say) cannot make e3 write or delete anything elsewhere: the slot
notices and makes a fresh directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path

from e3.base import atomic

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_REUSE = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class SlotDir:
    """One slot's working directory and the input copies it keeps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._ino = 0
        self._kept: dict[str, int] = {}  # input file name -> inode number

    def prepare(self) -> None:
        """Make sure the directory is the one this slot made (or make a new one)."""
        if self._fd is not None:
            try:
                st = os.lstat(self.path)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISDIR(st.st_mode) and st.st_ino == self._ino:
                return
            self.close()  # a task replaced or removed it
            if st is not None:
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(self.path, ignore_errors=True)
                else:
                    os.unlink(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self._fd, self._ino = fd, os.fstat(fd).st_ino

    @staticmethod
    def _input_names(count: int) -> list[str]:
        return [f"input-{k}.beast2" for k in range(count)]

    def input_paths(self, count: int) -> list[str]:
        """Where :meth:`stage` puts ``count`` inputs (known before they are copied)."""
        base = str(self.path)
        return [f"{base}/{n}" for n in self._input_names(count)]

    def stage(self, sources: list[str]) -> list[str]:
        """Copy stored objects to ``input-<k>.beast2``; returns the copies' paths."""
        self.prepare()
        assert self._fd is not None
        names = self._input_names(len(sources))
        for stale in [n for n in self._kept if n not in names]:
            self._kept.pop(stale)
            self._remove(stale)
        for name, source in zip(names, sources, strict=True):
            fd = self._reopen(name)
            if fd is None:
                self._remove(name)
                fd = os.open(name, _NEW, 0o644, dir_fd=self._fd)
            try:
                os.ftruncate(fd, _copy_into(source, fd))
                self._kept[name] = os.fstat(fd).st_ino
            finally:
                os.close(fd)
        return self.input_paths(len(names))

    def clean(self) -> None:
        """Remove whatever the last task left, except the input copies kept for the next."""
        if self._fd is None:
            return
        try:
            entries = list(os.scandir(self._fd))
        except OSError:
            return
        for e in entries:
            if e.name in self._kept and e.is_file(follow_symlinks=False):
                continue
            self._kept.pop(e.name, None)
            self._remove(e.name)

    def close(self) -> None:
        """Forget the directory (its files stay for whoever removes the run's scratch)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        self._kept.clear()

    def _reopen(self, name: str) -> int | None:
        """The kept copy ``name``, open for writing, if it is still the slot's own file."""
        ino = self._kept.pop(name, None)
        if ino is None:
            return None
        try:
            fd = os.open(name, _REUSE, dir_fd=self._fd)
        except OSError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_ino != ino or st.st_nlink != 1:
            os.close(fd)
            return None
        if stat.S_IMODE(st.st_mode) != 0o644:
            os.fchmod(fd, 0o644)
        return fd

    def _remove(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self._fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            shutil.rmtree(name, dir_fd=self._fd, ignore_errors=True)


def _copy_into(source: str, fd_out: int) -> int:
    """Write a file's bytes at the start of ``fd_out``; returns how many."""
    fd_in = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        offset = 0
        try:
            while sent := os.sendfile(fd_out, fd_in, offset, 1 << 30):
                offset += sent
        except OSError as exc:
            if offset or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            while chunk := os.read(fd_in, 1 << 20):  # a file system without sendfile
                atomic.write_all(fd_out, chunk)
                offset += len(chunk)
        return offset
    finally:
        with contextlib.suppress(OSError):
            os.close(fd_in)
