"""Mistakes in a package file are the user's: one line naming their file and line, exit 5.

They used to print "Internal error: … please report this" with exit 70.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests_support import run_e3

_GOOD_HEAD = """\
from east import East, IntegerType
import e3

x = e3.input("x", IntegerType, default=1)
"""

CASES = {
    "name-error": (_GOOD_HEAD + "y = undefined_name + 1\n", 5, "NameError"),
    "syntax-error": (_GOOD_HEAD + "def broken(:\n    pass\n", 5, "SyntaxError"),
    "missing-module": ("import no_such_module_e3\n", 1, "ModuleNotFoundError"),
    "east-expression-error": (
        _GOOD_HEAD
        + "t = e3.task('t', [x], East.function([IntegerType], IntegerType,"
        + " lambda b, v: v + 'text'))\n",
        5,
        "",
    ),
    "wrong-arity": (
        _GOOD_HEAD
        + "t = e3.task('t', [x, x], East.function([IntegerType], IntegerType, lambda b, v: v))\n",
        5,
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_mistake_in_the_file_names_file_and_line(tmp_path: Path, case: str) -> None:
    text, line, kind = CASES[case]
    src = tmp_path / "pkg.py"
    src.write_text(text)
    r = run_e3("package", "build", src, "-o", tmp_path / "out.zip")
    assert r.code == 5, r.err
    assert len(r.err_lines) == 1, r.err  # one line, no traceback
    assert f"{src}:{line}" in r.err, r.err
    assert kind in r.err
    assert "Internal error" not in r.err and "report this" not in r.err
    assert not (tmp_path / "out.zip").exists()


def test_traceback_on_request_shows_only_the_users_frames(tmp_path: Path) -> None:
    src = tmp_path / "pkg.py"
    src.write_text(_GOOD_HEAD + "def helper():\n    return undefined_name\n\n\nvalue = helper()\n")
    r = run_e3("package", "build", src, "--traceback", "-o", tmp_path / "out.zip")
    assert r.code == 5
    assert f"{src}:6" in r.err  # where helper() fails
    assert f'File "{src}", line 9' in r.err  # the call site, in the user's traceback
    assert "importlib" not in r.err and "/e3/" not in r.err
