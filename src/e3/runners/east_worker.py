"""A warm east-py worker: runs ``east-py run …`` commands without a new process each.

Started by :mod:`e3.runners.east_warm`. It imports east-py, its runner CLI and
the platform packages once, then serves requests read from stdin and answers
on file descriptor 3, one task at a time. For the duration of a task, file
descriptors 1 and 2 point at the execution's log files. Compiled IR is cached
by content.

Two ways to run a request, with the same results:

* **direct**: the plain ``east-py run [-p PKG]… [-i IN]… -o OUT.beast2 PROGRAM``
  that e3 generates is executed without east-py's ``run`` command code: the
  program is compiled once (cached by its object hash, so no ``stat`` per task),
  the inputs decoded as east-py's runner decodes them, the function called, and
  its result encoded in e3's canonical Beast2 (:func:`e3.codec.beast2.encode`),
  which e3 would otherwise compute in the engine by decoding and re-encoding the
  file east-py wrote. A small output goes back in the reply instead of a file.
  Outputs whose type can hold a DateTime are written by east-py's own writer
  (it writes some DateTimes 1 ms early, e3's encoder exactly: results must not
  depend on the runner) and checked by the engine as before.
  east-py's command spends ~0.4 ms per task in ``pathlib`` and file checks; this
  path a few tens of microseconds.
* **command**: anything else (other flags, other output formats, ``EAST_PROFILE``,
  or a direct attempt that fails before the function is called, such as a
  missing file) runs through east-py's own ``run`` command, so output bytes,
  messages and exit codes are the ones the command would give as a process.

Protocol: each message is an 8-byte header (two big-endian u32: the length of a
UTF-8 JSON object, then of a binary payload), the JSON, then the payload.
Request: ``{"argv", "cwd", "env"?, "env_update", "stdout", "stderr", "objects"?,
"inline"?}`` (``objects``: path → hash of stored objects among the paths;
``inline``: largest output the engine takes in the reply). Reply:
``{"exit_code", "rss", "logs": [stdout bytes, stderr bytes], "output"}``, where
``output`` is ``"inline"`` (the canonical bytes are the payload), ``"file"``
(canonical bytes written at the output path) or ``null`` (whatever the command
wrote). ``rss`` is the peak resident set. EOF on stdin ends the worker.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import struct
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HEADER = struct.Struct(">II")
_REPLY_FD = 3
_LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_COLLECTIONS = ("Array", "Set", "Dict")


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
    """One framed JSON message (``None`` at EOF); requests carry no payload."""
    head = _read_exact(fd, _HEADER.size)
    if head is None:
        return None
    size, extra = _HEADER.unpack(head)
    body = _read_exact(fd, size + extra)
    if body is None:
        return None
    value: dict[str, Any] = json.loads(body[:size])
    return value


def frame(message: dict[str, Any], payload: bytes = b"") -> bytes:
    """A message (and its payload) as bytes on the wire."""
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body), len(payload)) + body + payload


def split_frames(buffer: bytearray) -> list[tuple[dict[str, Any], bytes]]:
    """Take every complete message off the front of ``buffer``."""
    out = []
    while len(buffer) >= _HEADER.size:
        size, extra = _HEADER.unpack_from(buffer)
        end = _HEADER.size + size + extra
        if len(buffer) < end:
            break
        message = json.loads(bytes(buffer[_HEADER.size : _HEADER.size + size]))
        out.append((message, bytes(buffer[_HEADER.size + size : end])))
        del buffer[:end]
    return out


def _peak_rss_bytes() -> int:
    """Peak resident set (one system call; a worker past its limit is retired)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _read_file(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class _Direct(Exception):
    """The direct path cannot serve this request (it goes through east-py's command)."""


class Worker:
    """The request loop's state: east-py's CLI, caches, the baseline environment."""

    def __init__(self) -> None:
        from east_py_cli import cli, loader, runner

        self.cli = cli
        self.runner = runner
        self.parser = cli.create_parser()
        self.defaults = self.parser.parse_args(["run", "program.beast2"])
        self.env = dict(os.environ)
        self._libc = ctypes.CDLL(None)
        # Platform packages load once per worker.
        original_load: Callable[[str], list[Any]] = loader.load_platform
        self._platforms: dict[str, list[Any]] = {}

        def load_platform(name: str) -> list[Any]:
            if name not in self._platforms:
                self._platforms[name] = original_load(name)
            return self._platforms[name]

        self.load_platform = load_platform
        cli.load_platform = load_platform  # cmd_run looks it up in its own module
        # Compiled IR is cached by (content, platform functions).
        self._original_compile = runner._compile_ir_file
        self._compiled: dict[tuple[object, ...], Any] = {}

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
            return self._compile(key, ir_file, platform_fns)

        runner._compile_ir_file = compile_ir_file
        with contextlib.suppress(ImportError, ValueError):
            load_platform("east-py-std")
        from east.runtime._compiler_eastc import _eastc_call, load_frozen_value
        from east.runtime.errors import EastError
        from east_py_cli.loader import save_value

        from e3.codec import beast2
        from e3.codec._datetimes import has_datetime

        self._call_fn = _eastc_call
        self._load_value = load_frozen_value
        self._east_error = EastError
        self._encode = beast2.encode
        self._has_datetime = has_datetime
        self._save_value = save_value

    def _compile(self, key: tuple[object, ...], ir_file: Path, platform_fns: list[Any]) -> Any:
        hit = self._compiled.get(key)
        if hit is None:
            if len(self._compiled) > 512:
                self._compiled.clear()
            hit = self._compiled[key] = self._original_compile(ir_file, platform_fns)
        return hit

    def parse(self, argv: list[str]) -> argparse.Namespace:
        """``east-py run`` arguments, as east-py's own parser reads them.

        The argv e3 generates (``-p``/``-i``/``-o`` and the program) is read
        directly; anything else goes through east-py's argparse parser.
        """
        simple = _simple_run(argv)
        if simple is not None:
            args = argparse.Namespace(**vars(self.defaults))
            args.package, inputs, output, program = simple
            args.input = [Path(p) for p in inputs]
            args.output = None if output is None else Path(output)
            args.ir_file = Path(program)
            return args
        parsed: argparse.Namespace = self.parser.parse_args(argv[1:])
        return parsed

    # ── one request ──────────────────────────────────────────────────────

    def run(self, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """Execute one ``east-py run`` argv; returns the reply and its payload."""
        env: dict[str, str] | None = request.get("env")
        if env is not None and env != self.env:  # only sent when it changed
            os.environ.clear()
            os.environ.update(env)
            self.env = dict(env)
        changes = request.get("env_update")
        if changes:
            os.environ.update(changes)
        os.chdir(request["cwd"])
        self._open_logs(request["stdout"], request["stderr"])
        output: str | None = None
        payload = b""
        try:
            try:
                direct = self._direct(request)
            except _Direct:
                direct = None
            if direct is not None:
                code, output, payload = direct
            else:
                code = self._command(request["argv"])
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            self._libc.fflush(None)
        try:
            logs: list[int] | None = [os.fstat(1).st_size, os.fstat(2).st_size]
        except OSError:  # the task closed them: the engine looks at the files itself
            logs = None
        reply = {"exit_code": code, "rss": _peak_rss_bytes(), "logs": logs, "output": output}
        return reply, payload

    def _open_logs(self, stdout: str, stderr: str) -> None:
        """Point descriptors 1 and 2 at this task's log files, emptied.

        Opened afresh for every task: the engine may have truncated, replaced
        or removed a spool file since (another runner, a new run), so a
        descriptor kept from an earlier task could point at the wrong file.
        They are not pointed back at ``/dev/null`` after the task: the worker
        writes nothing between tasks, and the next task reopens them.
        """
        out = os.open(stdout, _LOG_FLAGS, 0o644)
        err = os.open(stderr, _LOG_FLAGS, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)

    def _command(self, argv: list[str]) -> int:
        """Run ``argv`` through east-py's own ``run`` command code."""
        try:
            args = self.parse(argv)
            args.exit_with_parent = False  # the worker has its own lifeline
            return int(self.cli.cmd_run(args))
        except SystemExit as exc:  # argparse refused the arguments
            return exc.code if isinstance(exc.code, int) else 2

    def _direct(self, request: dict[str, Any]) -> tuple[int, str | None, bytes]:
        """Run a plain e3-generated request without east-py's command code.

        Raises:
            _Direct: the request is not one this path serves, or it failed before
                the function was called (the command path then says why).
        """
        simple = _simple_run(request["argv"])
        inline = request.get("inline")
        if (
            simple is None
            or inline is None
            or simple[2] is None
            or not simple[2].endswith(".beast2")
            or os.environ.get("EAST_PROFILE", "") not in ("", "0")
        ):
            raise _Direct
        packages, inputs, output, program = simple
        if output is None:
            raise _Direct
        try:
            handle, values = self._prepare(packages, inputs, program, request.get("objects", {}))
        except Exception as exc:  # any failure here is reported by the command path
            raise _Direct from exc
        return self._call(handle, values, output, int(inline))

    def _prepare(
        self, packages: list[str], inputs: list[str], program: str, objects: dict[str, str]
    ) -> tuple[Any, list[Any]]:
        """The compiled program and its decoded inputs, as east-py's runner gets them."""
        platform_fns = [f for p in packages for f in self.load_platform(p)]
        known = objects.get(program)
        key: tuple[object, ...] = (
            ("object", known, *packages) if known else ("path", program, *packages)
        )
        if known is None:
            st = os.stat(program)
            key += (st.st_size, st.st_mtime_ns, st.st_ino)
        compiled, _ = self._compile(key, Path(program), platform_fns)
        handle = compiled._eastc_handle
        types = handle.get_input_types()
        if len(inputs) != len(types):
            raise _Direct  # east-py's message says what the signature is
        if any(
            getattr(t, "type", None) in _COLLECTIONS or not p.endswith((".beast2", ".beast"))
            for p, t in zip(inputs, types, strict=True)
        ):
            # Collections open lazily, other formats decode by extension: east-py's code.
            values, _ = self.runner._open_inputs(handle, [Path(p) for p in inputs], False, False)
            return handle, values
        raw = handle._input_types
        return handle, [self._load_value(raw[i], _read_file(p)) for i, p in enumerate(inputs)]

    def _call(
        self, handle: Any, values: list[Any], output: str, inline: int
    ) -> tuple[int, str | None, bytes]:
        """Call the function and encode its result (errors as east-py reports them).

        Canonically with e3's encoder, unless the type can hold a DateTime or
        e3's encoder refuses the value: then east-py's writer, unflagged.
        """
        try:
            result = self._call_fn(
                handle._compiled, handle._input_types, handle._output_type, tuple(values)
            )
        except Exception as exc:
            # east-py's `run` command: the error (with a traceback unless it is East's).
            print(f"Error: {exc}", file=sys.stderr)
            if not isinstance(exc, self._east_error):
                traceback.print_exc()
            return 1, None, b""
        out_type = handle.get_output_type()
        try:
            data = None if self._has_datetime(out_type) else self._encode(result, out_type)
        except Exception:  # not encodable canonically here: east-py writes it, e3 checks it
            data = None
        try:
            if data is None:
                # east-py's own writer: the bytes its command writes. e3's encoder writes
                # some DateTimes 1 ms later than east-py 1.0.97 does (e3.codec._datetimes),
                # and the stored result must not depend on which runner ran the task.
                self._save_value(Path(output), result, out_type)
                return 0, None, b""
            if len(data) <= inline:
                return 0, "inline", data
            with open(output, "wb") as f:
                f.write(data)
        except Exception as exc:  # writing the output failed (a full disk): as east-py says it
            print(f"Error: {exc}", file=sys.stderr)
            traceback.print_exc()
            return 1, None, b""
        return 0, "file", b""


def _simple_run(argv: list[str]) -> tuple[list[str], list[str], str | None, str] | None:
    """``(packages, inputs, output, program)`` of a plain ``east-py run`` argv.

    Plain: only ``-p``/``-i``/``-o`` pairs and the program last, as e3 generates
    it; ``None`` for anything else (east-py's own parser reads that).
    """
    if len(argv) < 3 or argv[1] != "run":
        return None
    packages: list[str] = []
    inputs: list[str] = []
    output: str | None = None
    rest = argv[2:]
    k = 0
    while k < len(rest) - 1:
        flag, value = rest[k], rest[k + 1]
        if flag == "-p":
            packages.append(value)
        elif flag == "-i":
            inputs.append(value)
        elif flag == "-o":
            output = value
        else:
            return None
        k += 2
    if k != len(rest) - 1 or rest[k].startswith("-"):
        return None
    return packages, inputs, output, rest[k]


def main() -> None:
    """Serve requests until stdin closes."""
    worker = Worker()
    os.write(_REPLY_FD, frame({"ready": True, "pid": os.getpid()}))
    while True:
        request = read_message(0)
        if request is None:
            return
        reply, payload = worker.run(request)
        data = frame(reply, payload)
        view = memoryview(data)
        while view:
            view = view[os.write(_REPLY_FD, view) :]


if __name__ == "__main__":
    main()
