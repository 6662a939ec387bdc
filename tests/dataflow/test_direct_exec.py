"""A one-command ``bash -c`` script run without bash behaves exactly as under bash.

The process runner skips bash for scripts that are one simple command of plain
words and single quotes (see ``e3.runners.direct``). These tests hold that
shortcut to bash itself: the words it splits agree with bash's on thousands of
random scripts, and a real program started either way sees the same argv,
environment and working directory; what the shortcut must not take (syntax,
builtins, a script without ``#!``, a missing command) still goes to bash.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from e3.runners.base import RunRequest, RunResult
from e3.runners.direct import plan_direct_exec, split_simple_command
from e3.runners.guardian import Guardian
from e3.runners.process import ProcessRunner

_ALPHABET = [*"ab-_./=:@%^+,", " ", " ", "\t", "'", "'", "\\", "é", "数", "$", "*", "~"]
_ALPHABET += ["#", ";", '"', "{", "}", "!", "&", "|", "<", ">", "(", ")", "`", "?", "[", "\n"]


def _bash_words(tails: list[str]) -> list[list[str]]:
    """How bash splits each tail, all in one bash process (one printf per tail)."""
    lines = [f"printf '%s\\0' {t}; printf '\\1\\0'" for t in tails]
    out = subprocess.run(
        ["bash", "-c", "\n".join(lines)], capture_output=True, check=True, env=_plain_env()
    ).stdout.decode()
    groups: list[list[str]] = [[]]
    for item in out.split("\0")[:-1]:
        if item == "\1":
            groups.append([])
        else:
            groups[-1].append(item)
    return groups[:-1]


def _plain_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}


def test_words_agree_with_bash_on_random_scripts() -> None:
    rng = random.Random(20261125)
    accepted: list[tuple[str, list[str]]] = []
    while len(accepted) < 3000:
        script = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 24)))
        words = split_simple_command(script)
        if words is not None:
            accepted.append((script, words))
    # Rejection is always safe (bash runs the script); every acceptance must match bash
    # word for word, quotes and escapes included.
    assert sum("'" in s for s, _ in accepted) > 300
    assert sum("\\" in s for s, _ in accepted) > 300
    bash = _bash_words([s for s, _ in accepted])
    assert len(bash) == len(accepted)
    mismatches = [(s, ours, b) for (s, ours), b in zip(accepted, bash, strict=True) if ours != b]
    assert not mismatches[:5]


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ("cp 'a b' c", ["cp", "a b", "c"]),
        ("cp '/x/it'\\''s' '/y'", ["cp", "/x/it's", "/y"]),
        ("  cp\ta  ", ["cp", "a"]),
        ("f ''", ["f", ""]),
        ("f a\\ b", ["f", "a b"]),
        ("f 'a'b'c'", ["f", "abc"]),
    ],
)
def test_quoting_our_templates_produce_is_understood(script: str, words: list[str]) -> None:
    assert split_simple_command(script) == words
    assert _bash_words([script]) == [words]


@pytest.mark.parametrize(
    "script",
    [
        "echo hi",  # builtin
        "true",
        "A=1 env",  # assignment
        "env > out",  # redirection
        "env; env",
        "env $HOME",
        "env ~",
        "env *",
        "env {a,b}",
        "if true; then env; fi",
        "env 'unterminated",
        "env a\\",
        "env # comment",
        "./relative-program",
        "no-such-program-e3-test",
    ],
)
def test_shell_syntax_builtins_and_unknown_commands_go_to_bash(script: str) -> None:
    assert plan_direct_exec(["bash", "-c", script], _plain_env(), "/") is None


@pytest.mark.parametrize(
    "variable", ["BASH_ENV", "SHELLOPTS", "BASHOPTS", "POSIXLY_CORRECT", "BASH_FUNC_f%%"]
)
def test_an_environment_that_changes_bash_goes_to_bash(variable: str) -> None:
    env = {**_plain_env(), variable: "x"}
    assert plan_direct_exec(["bash", "-c", "env"], env, "/") is None
    assert plan_direct_exec(["bash", "-c", "env"], _plain_env(), "/") is not None


def test_only_bash_dash_c_with_one_script_is_considered() -> None:
    for argv in (["sh", "-c", "env"], ["bash", "-c", "env", "x"], ["bash", "env"], ["env"]):
        assert plan_direct_exec(argv, _plain_env(), "/") is None


_PROBE = """#!{python}
import json, os, sys
with open(os.environ["PROBE_OUT"], "w") as f:
    json.dump({{"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd()}}, f)
sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
"""


@pytest.fixture
def probe_bin(tmp_path: Path) -> Path:
    """A directory holding ``probe``: a program that writes what it sees to $PROBE_OUT."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    probe = bindir / "probe"
    probe.write_text(_PROBE.format(python=sys.executable))
    probe.chmod(0o755)
    return bindir


def _run(argv: list[str], env: dict[str, str], cwd: Path, tmp: Path) -> RunResult:
    request = RunRequest(
        argv=tuple(argv),
        cwd=cwd,
        env=env,
        stdout=tmp / "stdout",
        stderr=tmp / "stderr",
        timeout=None,
        label="t",
    )

    async def go() -> RunResult:
        runner = ProcessRunner(guardian=Guardian())
        try:
            return await runner.run(request, lambda pid: None)
        finally:
            await runner.close()
            runner.guardian.close()

    return asyncio.run(go())


@pytest.mark.parametrize(
    "case",
    ["plain", "shlvl", "pwd-via-symlink", "stale-pwd", "oldpwd", "absolute-command", "exit-3"],
)
def test_the_program_sees_what_it_would_see_under_bash(
    case: str, probe_bin: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    link = tmp_path / "link"
    link.symlink_to(workdir)
    env = {"PATH": f"{probe_bin}:/usr/bin:/bin", "HOME": str(tmp_path), "E3_TASK": "t"}
    script = "probe 'a b' c\\ d '' 'é 数' x=y"
    if case == "shlvl":
        env["SHLVL"] = "7"
    elif case == "pwd-via-symlink":
        env["PWD"] = str(link)
    elif case == "stale-pwd":
        env["PWD"] = str(tmp_path)
    elif case == "oldpwd":
        env["OLDPWD"] = str(tmp_path)
    elif case == "absolute-command":
        script = f"{probe_bin}/probe 1 2"
    elif case == "exit-3":
        env["PROBE_EXIT"] = "3"
    cwd = link if case == "pwd-via-symlink" else workdir
    assert plan_direct_exec(["bash", "-c", script], env, str(cwd)) is not None

    seen = {}
    codes = {}
    for way in ("direct", "bash"):
        out = tmp_path / f"{way}.json"
        run_env = {**env, "PROBE_OUT": str(out)}
        if way == "direct":
            codes[way] = _run(["bash", "-c", script], run_env, cwd, tmp_path).exit_code
        else:
            codes[way] = subprocess.run(["bash", "-c", script], env=run_env, cwd=cwd).returncode
        seen[way] = json.loads(out.read_text())
        seen[way]["env"].pop("PROBE_OUT")
    assert seen["direct"] == seen["bash"]
    assert codes["direct"] == codes["bash"] == (3 if case == "exit-3" else 0)


def test_a_script_without_a_shebang_is_run_by_bash_as_before(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "legacy"
    script.write_text('echo "ran as a shell script" > out.txt\nexit 4\n')
    script.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    assert plan_direct_exec(["bash", "-c", "legacy"], env, str(tmp_path)) is not None
    result = _run(["bash", "-c", "legacy"], env, tmp_path, tmp_path)
    assert result.exit_code == 4
    assert (tmp_path / "out.txt").read_text() == "ran as a shell script\n"


def test_a_missing_command_gets_bashs_message_and_status(tmp_path: Path) -> None:
    result = _run(["bash", "-c", "no-such-program-e3-test a"], _plain_env(), tmp_path, tmp_path)
    assert result.exit_code == 127
    assert "no-such-program-e3-test: command not found" in (tmp_path / "stderr").read_text()
