"""Running a one-command ``bash -c`` script without starting bash.

Custom tasks run as ``bash -c SCRIPT``. When SCRIPT is a single simple command
made only of plain words, single-quoted strings and backslash escapes (nothing
bash would expand, redirect or interpret) and its command is an external
program, all bash does is look the program up on ``PATH`` and ``exec`` it in
its own place (bash replaces itself with the last command of a ``-c`` script).
Doing that ourselves saves bash's start-up, about 1.3 ms of CPU per task on a
2-core machine: a third of what a ``cp`` task costs in all.

The task sees what it would have seen under bash: the same process (its pid is
the process group the engine watches), the same ``argv`` (the command word as
written, not the resolved path), exit status, working directory and
environment, including the three variables bash adds (``PWD``, ``SHLVL``,
``_``). Anything this module cannot reproduce exactly goes to bash as before:
shell syntax of any kind, builtins and keywords, an environment that changes
how bash starts (``BASH_ENV``, exported functions, shell options, POSIX mode),
unusual ``SHLVL``/``OLDPWD``/``PATH`` values, and commands that are not found or
cannot be executed directly (bash then runs a script without a ``#!`` line
itself, or prints its own "command not found").

Pure functions: the caller spawns.
"""

from __future__ import annotations

import os
import re
import shutil
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Characters that mean nothing to bash outside quotes (no expansion, globbing,
#: redirection, tilde, brace, comment, history or separator meaning).
_PLAIN = frozenset(string.ascii_letters + string.digits + "-_./:,+=@%^")

#: bash 5 builtins and reserved words (``compgen -b``, ``compgen -k``): bash runs
#: these itself rather than exec'ing a program of the same name.
_BASH_OWN_NAMES = (
    ". : [ alias bg bind break builtin caller cd command compgen complete compopt continue "
    "declare dirs disown echo enable eval exec exit export false fc fg getopts hash help "
    "history jobs kill let local logout mapfile popd printf pushd pwd read readarray "
    "readonly return set shift shopt source suspend test times trap true type typeset "
    "ulimit umask unalias unset wait "
    "if then else elif fi case esac for select while until do done in function time "
    "{ } ! [[ ]] coproc"
)
_BASH_OWN = frozenset(_BASH_OWN_NAMES.split())

#: Environment variables that change how bash starts or parses: with any of them
#: set, only bash itself can say what the script means.
_BASH_STARTUP_VARIABLES = ("BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "POSIXLY_CORRECT")

_SHLVL = re.compile(r"[0-9]{1,3}")


def split_simple_command(script: str) -> list[str] | None:
    """The words of ``script`` if it is plain words, single quotes and escapes only.

    Returns ``None`` for anything else (including an unterminated quote or an
    escaped newline), so the caller leaves the script to bash.
    """
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i, n = 0, len(script)
    while i < n:
        c = script[i]
        if c in " \t":
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
        elif c == "'":
            end = script.find("'", i + 1)
            if end < 0:
                return None
            current.append(script[i + 1 : end])
            in_word = True
            i = end + 1
        elif c == "\\":
            if i + 1 >= n or script[i + 1] == "\n":
                return None
            current.append(script[i + 1])
            in_word = True
            i += 2
        elif c in _PLAIN:
            current.append(c)
            in_word = True
            i += 1
        else:
            return None
    if in_word:
        words.append("".join(current))
    return words or None


@dataclass(frozen=True)
class DirectExec:
    """What to spawn instead of ``bash -c SCRIPT``."""

    executable: str
    argv: list[str]
    env: dict[str, str]


def plan_direct_exec(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> DirectExec | None:
    """How to run ``argv`` without bash, or ``None`` if it must go through bash.

    ``env`` and ``cwd`` are those the task would get; the returned environment
    adds what bash would add before exec'ing the command.
    """
    if len(argv) != 3 or argv[0] != "bash" or argv[1] != "-c":
        return None
    if any(v in env for v in _BASH_STARTUP_VARIABLES) or any(
        k.startswith("BASH_FUNC_") for k in env
    ):
        return None
    words = split_simple_command(argv[2])
    if words is None:
        return None
    command = words[0]
    # ``NAME=value cmd`` assigns; a builtin or keyword never reaches exec.
    if not command or "=" in command or command in _BASH_OWN:
        return None
    executable = _find_program(command, env)
    if executable is None:
        return None
    child_env = _bash_child_env(env, cwd)
    if child_env is None:
        return None
    child_env["_"] = executable
    return DirectExec(executable, words, child_env)


def _find_program(command: str, env: Mapping[str, str]) -> str | None:
    """The file bash would exec for ``command``, if there is no doubt about it."""
    if "/" in command:
        # Relative paths are relative to the task's directory, which ``which`` would
        # not use; an absolute one is exec'd as it is.
        if not command.startswith("/"):
            return None
        return command if os.path.isfile(command) and os.access(command, os.X_OK) else None
    path = env.get("PATH")
    if not path:
        return None  # bash falls back to its own default search path
    dirs = path.split(os.pathsep)
    if any(not d.startswith("/") or d.endswith("/") or "//" in d for d in dirs):
        # Empty or relative entries mean the task's directory to bash; odd slashes
        # would spell ``_`` differently.
        return None
    return shutil.which(command, path=path)


def _bash_child_env(env: Mapping[str, str], cwd: str) -> dict[str, str] | None:
    """``env`` as a command exec'd by ``bash -c`` receives it (None: leave it to bash).

    bash exports ``PWD`` (the inherited value if it names the working directory,
    else the physical path) and ``SHLVL`` (its own level, taken back by one for
    the command it execs in its place), drops an ``OLDPWD`` that is not a
    directory, and sets ``_`` (done by the caller).
    """
    out = dict(env)
    level = env.get("SHLVL")
    if level is None:
        out["SHLVL"] = "0"
    elif _SHLVL.fullmatch(level) and int(level) < 998:
        out["SHLVL"] = str(int(level))
    else:
        return None  # bash's rules for odd values (signs, blanks, overflow) stay bash's
    old = env.get("OLDPWD")
    if old is not None and not os.path.isdir(old):
        return None
    inherited = env.get("PWD")
    if inherited is not None and _names_directory(inherited, cwd):
        out["PWD"] = inherited
    else:
        out["PWD"] = os.path.realpath(cwd)
    return out


def _names_directory(pwd: str, cwd: str) -> bool:
    """Whether bash would keep an inherited ``PWD``: absolute, no dot parts, same directory."""
    if not pwd.startswith("/") or any(p in (".", "..") for p in pwd.split("/")):
        return False
    try:
        return os.path.samefile(pwd, cwd)
    except OSError:
        return False
