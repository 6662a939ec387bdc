"""Running a command under ``strace`` and reading back the system calls it made.

Why strace (and not a FUSE file system that buffers unsynced state): it traces the
real process tree on the real file system, so e3 runs exactly as in production
(same ``syncfs``, same ``renameat2``, same threads and helper processes), it
needs no kernel module, mount or privilege beyond ``ptrace``, and it records
the *order* of operations across every thread and process, which is what crash
states are built from. The file-system semantics a crash may expose are then
modelled offline (:mod:`fuzz.powercut.crash`), where two models can be applied
to the same recording.

The ordering argument: a traced thread is stopped at every system-call entry
and exit until strace has printed it, so when strace prints the exit of call A
before the entry of call B, A's work in the kernel was finished before B's
began. A call whose entry and exit are printed apart (another thread ran in
between) is treated as concurrent with what was printed in between.

``-xx`` prints every string (data and paths) as ``\\xHH`` escapes, so the
parser never meets a quote, comma or bracket inside a string; ``-y`` annotates
every descriptor with the path it refers to.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Every call that creates, changes, names or makes durable a file, plus the
#: process and descriptor calls needed to know which file a descriptor is and
#: where its offset stands.
TRACED = (
    "open,openat,openat2,creat,close,close_range,dup,dup2,dup3,fcntl,lseek,"
    "write,pwrite64,writev,pwritev,pwritev2,sendfile,copy_file_range,"
    "ftruncate,truncate,fallocate,fsync,fdatasync,syncfs,sync,"
    "rename,renameat,renameat2,link,linkat,symlink,symlinkat,unlink,unlinkat,rmdir,"
    "mkdir,mkdirat,chdir,fchdir,clone,clone3,fork,vfork,execve"
)
#: Largest string strace prints whole; a longer one would be cut and is refused.
MAX_STRING = 64 << 20


class TraceError(RuntimeError):
    """The recording cannot be trusted (strace missing, a cut string, an unknown form)."""


def strace_path() -> str:
    """The strace binary (raises :class:`TraceError` with the fix when missing)."""
    found = shutil.which("strace")
    if found is None:
        raise TraceError("strace is not installed (Debian: apt-get install strace)")
    return found


def run_traced(
    argv: Sequence[str], trace_file: Path, *, env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` and every process it starts under strace, writing ``trace_file``."""
    cmd = [
        strace_path(),
        "-f",
        "-qq",
        "-y",
        "-xx",
        "-s",
        str(MAX_STRING),
        "--seccomp-bpf",
        "-e",
        f"trace={TRACED}",
        "-o",
        str(trace_file),
        "--",
        *argv,
    ]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, timeout=timeout)


@dataclass(frozen=True)
class Syscall:
    """One completed system call: ``args`` are raw top-level tokens (see the helpers)."""

    tid: int
    name: str
    args: tuple[str, ...]
    result: str  # what follows "= ", e.g. "3<\\x2f...>", "0", "-1 ENOENT (...)"
    entry_line: int
    exit_line: int

    @property
    def failed(self) -> bool:
        """Whether the call returned an error (it then changed nothing)."""
        return self.result.startswith("-1") or self.result.startswith("?")

    @property
    def value(self) -> int:
        """The numeric return value."""
        return int(re.match(r"-?\d+", self.result).group(0))  # type: ignore[union-attr]

    @property
    def result_path(self) -> str | None:
        """The path annotation of a returned descriptor (``open`` and friends)."""
        return annotation(self.result)


@dataclass(frozen=True)
class Entered:
    """A call that started but whose exit is printed later (another thread ran between).

    ``text`` holds the arguments printed at entry (a ``clone``'s flags, an
    ``fsync``'s descriptor).
    """

    tid: int
    name: str
    line: int
    text: str

    @property
    def args(self) -> list[str]:
        """The top-level argument tokens printed so far."""
        return split_args(self.text)


_LINE = re.compile(r"^(\d+)\s+(.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)$")
_UNFINISHED = " <unfinished ...>"


def parse_trace(path: Path) -> Iterator[Syscall | Entered]:
    """Calls in the order they completed; :class:`Entered` marks split calls' entries."""
    pending: dict[int, tuple[str, str, int]] = {}
    with open(path, encoding="ascii", errors="strict") as f:
        for number, raw in enumerate(f, 1):
            m = _LINE.match(raw.rstrip("\n"))
            if m is None:
                raise TraceError(f"trace line {number}: unexpected form: {raw[:200]!r}")
            tid, rest = int(m.group(1)), m.group(2)
            if rest.startswith(("---", "+++")):
                continue  # signals and exits
            resumed = _RESUMED.match(rest)
            if resumed is not None:
                name, start_text, start_line = pending.pop(tid)
                if resumed.group(1) != name:
                    raise TraceError(f"trace line {number}: {name} resumed as {resumed.group(1)}")
                yield _complete(tid, name, start_text + resumed.group(2), start_line, number)
                continue
            call = _CALL.match(rest)
            if call is None:
                raise TraceError(f"trace line {number}: unexpected form: {rest[:200]!r}")
            name, text = call.group(1), call.group(2)
            if text.endswith(_UNFINISHED):
                pending[tid] = (name, text[: -len(_UNFINISHED)], number)
                yield Entered(tid, name, number, text[: -len(_UNFINISHED)])
                continue
            yield _complete(tid, name, text, number, number)
    # Calls still pending belong to processes killed inside them (exit_group and the like).


def _complete(tid: int, name: str, text: str, entry: int, exit_: int) -> Syscall:
    args, close = _arguments(text)
    if close == len(text):
        raise TraceError(f"unbalanced argument list: {text[:200]!r}")
    tail = text[close + 1 :]
    eq = tail.find("= ")
    if eq < 0:
        raise TraceError(f"trace line {exit_}: no result in {text[:200]!r}")
    return Syscall(tid, name, tuple(args), tail[eq + 2 :].strip(), entry, exit_)


def split_args(text: str) -> list[str]:
    """Top-level comma-separated tokens of an argument list."""
    return _arguments(text)[0]


def _arguments(text: str) -> tuple[list[str], int]:
    """The top-level tokens of an argument list (``text`` starts inside it), and the index
    of the parenthesis closing it (``len(text)`` if it is not closed).

    Quoted strings, ``<…>`` descriptor paths and nested brackets are skipped whole.
    """
    out: list[str] = []
    depth = 0
    start = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = text.index('"', i + 1)
        elif c == "<" and i > 0 and (text[i - 1].isdigit() or text[i - 1] == "D"):
            i = text.index(">", i + 1)
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif c == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
        i += 1
    last = text[start:i].strip()
    if last:
        out.append(last)
    return out, i


_HEX = re.compile(r"\\x([0-9a-f]{2})")


def unescape(body: str) -> bytes:
    """Bytes of a ``-xx`` escaped string body (without the quotes)."""
    if "\\" not in body:
        return body.encode("ascii")
    if len(body) % 4 == 0 and _HEX.sub("", body) == "":
        return bytes.fromhex(body.replace("\\x", ""))
    out = bytearray()
    i = 0
    while i < len(body):
        if body.startswith("\\x", i):
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        else:
            out.append(ord(body[i]))
            i += 1
    return bytes(out)


def string_arg(token: str) -> bytes:
    """A quoted string argument's bytes (a string cut by ``-s`` is refused)."""
    if not token.startswith('"'):
        raise TraceError(f"expected a string, got {token[:80]!r}")
    end = token.index('"', 1)
    if token[end + 1 :].startswith("..."):
        raise TraceError("a string was cut short by strace's -s limit")
    return unescape(token[1:end])


def annotation(token: str) -> str | None:
    """The path in a ``-y`` annotation (``3</a/b>`` → ``/a/b``), or ``None``."""
    lt = token.find("<")
    if lt < 0 or not token.endswith(">"):
        return None
    return unescape(token[lt + 1 : -1]).decode("utf-8", "surrogateescape")


def fd_arg(token: str) -> int:
    """The descriptor number of an argument (``AT_FDCWD`` is -100)."""
    if token.startswith("AT_FDCWD"):
        return -100
    m = re.match(r"-?\d+", token)
    if m is None:
        raise TraceError(f"expected a descriptor, got {token[:80]!r}")
    return int(m.group(0))


def int_arg(token: str) -> int:
    """A numeric argument (``[5 => 9]`` style pointers give their first number)."""
    m = re.search(r"-?\d+", token)
    if m is None:
        raise TraceError(f"expected a number, got {token[:80]!r}")
    return int(m.group(0), 0) if token.startswith("0x") else int(m.group(0))


def flag_set(token: str) -> set[str]:
    """Symbolic flags of an argument (``O_WRONLY|O_CREAT`` → {"O_WRONLY", "O_CREAT"})."""
    return {part.strip() for part in token.split("|")}


def iovec_data(token: str) -> bytes:
    """Concatenated bytes of a ``writev`` iovec array."""
    return b"".join(string_arg(m) for m in re.findall(r'iov_base=("[^"]*"(?:\.\.\.)?)', token))
