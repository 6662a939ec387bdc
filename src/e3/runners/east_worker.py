"""A warm east-py worker: runs ``east-py run …`` commands without a new process each.

Started by :mod:`e3.runners.east_warm`. It imports east-py, its runner CLI and
the platform packages once, then serves requests read from stdin and answers
on file descriptor 3, one task at a time. Each request is the argv of an
``east-py run`` command and is executed by east-py's own ``run`` command code,
so output bytes, messages and exit codes are the ones the command would give
as a separate process. For the duration of a task, file descriptors 1 and 2
point at the execution's log files. Compiled IR is cached by content.

Protocol: each message is a 4-byte big-endian length followed by UTF-8 JSON.
Request: ``{"argv", "cwd", "env", "stdout", "stderr"}``; reply:
``{"exit_code", "rss"}``. EOF on stdin ends the worker.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HEADER = struct.Struct(">I")
_REPLY_FD = 3


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int) -> dict[str, Any] | None:
    """One framed JSON message (``None`` at EOF)."""
    head = _read_exact(fd, _HEADER.size)
    if head is None:
        return None
    body = _read_exact(fd, _HEADER.unpack(head)[0])
    if body is None:
        return None
    value: dict[str, Any] = json.loads(body)
    return value


def frame(message: dict[str, Any]) -> bytes:
    """A message as bytes on the wire."""
    body = json.dumps(message).encode()
    return _HEADER.pack(len(body)) + body


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Worker:
    """The request loop's state: east-py's CLI, caches, the baseline environment."""

    def __init__(self) -> None:
        from east_py_cli import cli, loader, runner

        self.cli = cli
        self.parser = cli.create_parser()
        self.defaults = self.parser.parse_args(["run", "program.beast2"])
        self.env = dict(os.environ)
        self._libc = ctypes.CDLL(None)
        # Platform packages load once per worker.
        original_load: Callable[[str], list[Any]] = loader.load_platform
        platform_cache: dict[str, list[Any]] = {}

        def load_platform(name: str) -> list[Any]:
            if name not in platform_cache:
                platform_cache[name] = original_load(name)
            return platform_cache[name]

        cli.load_platform = load_platform  # cmd_run looks it up in its own module
        # Compiled IR is cached by (content, platform functions).
        original_compile = runner._compile_ir_file
        compiled: dict[tuple[object, ...], Any] = {}

        def compile_ir_file(ir_file: Path, platform_fns: list[Any]) -> Any:
            # A file is identified by path, size and modification time (e3 passes
            # content-addressed object files, which never change), and platform
            # lists come from the cache above, so their identity names them.
            st = os.stat(ir_file)
            key = (
                str(ir_file),
                st.st_size,
                st.st_mtime_ns,
                st.st_ino,
                len(platform_fns),
                *(id(f) for f in platform_fns[:1] + platform_fns[-1:]),
            )
            hit = compiled.get(key)
            if hit is None:
                if len(compiled) > 512:
                    compiled.clear()
                hit = compiled[key] = original_compile(ir_file, platform_fns)
            return hit

        runner._compile_ir_file = compile_ir_file
        with contextlib.suppress(ImportError, ValueError):
            load_platform("east-py-std")

    def parse(self, argv: list[str]) -> argparse.Namespace:
        """``east-py run`` arguments, as east-py's own parser reads them.

        The argv e3 generates (``-p``/``-i``/``-o`` and the program) is read
        directly; anything else goes through east-py's argparse parser.
        """
        if len(argv) >= 3 and argv[1] == "run":
            args = argparse.Namespace(**vars(self.defaults))
            args.package, args.input, args.output, program = [], [], None, None
            rest = argv[2:]
            k = 0
            while k < len(rest):
                a = rest[k]
                if a in ("-p", "-i", "-o") and k + 1 < len(rest):
                    value = rest[k + 1]
                    if a == "-p":
                        args.package.append(value)
                    elif a == "-i":
                        args.input.append(Path(value))
                    else:
                        args.output = Path(value)
                    k += 2
                elif not a.startswith("-") and program is None and k == len(rest) - 1:
                    program = a
                    k += 1
                else:
                    break
            else:
                if program is not None:
                    args.ir_file = Path(program)
                    return args
        parsed: argparse.Namespace = self.parser.parse_args(argv[1:])
        return parsed

    def run(self, request: dict[str, Any]) -> int:
        """Execute one ``east-py run`` argv; returns its exit code."""
        argv: list[str] = request["argv"]
        env: dict[str, str] | None = request.get("env")
        if env is not None and env != self.env:  # only sent when it changed
            os.environ.clear()
            os.environ.update(env)
            self.env = dict(env)
        changes = request.get("env_update")
        if changes:
            os.environ.update(changes)
        os.chdir(request["cwd"])
        saved = os.dup(1), os.dup(2)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC
        out = os.open(request["stdout"], flags, 0o644)
        err = os.open(request["stderr"], flags, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        try:
            try:
                args = self.parse(argv)
                args.exit_with_parent = False  # the worker has its own lifeline
                code = int(self.cli.cmd_run(args))
            except SystemExit as exc:  # argparse refused the arguments
                code = exc.code if isinstance(exc.code, int) else 2
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            self._libc.fflush(None)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        return code


def main() -> None:
    """Serve requests until stdin closes."""
    worker = Worker()
    os.write(_REPLY_FD, frame({"ready": True, "pid": os.getpid()}))
    while True:
        request = read_message(0)
        if request is None:
            return
        code = worker.run(request)
        os.write(_REPLY_FD, frame({"exit_code": code, "rss": _rss_bytes()}))


if __name__ == "__main__":
    main()
