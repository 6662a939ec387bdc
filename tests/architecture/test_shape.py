"""The code's shape, checked: modules small enough to read, functions short enough to follow.

The layer order and the absence of import cycles are ``import-linter`` contracts
(pyproject.toml, run by ``make lint``); these are the size rules beside them.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "e3"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these by job: {long}"


def test_no_function_is_longer_than_the_limit() -> None:
    long = {}
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{p.relative_to(SRC)}:{node.name}"] = n
    assert long == {}, f"split these: {long}"


def test_the_public_api_is_what_the_package_names() -> None:
    import e3

    for name in e3.__all__:
        assert getattr(e3, name) is not None, name
    assert callable(e3.open)
