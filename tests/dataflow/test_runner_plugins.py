"""Runner plugins (entry-point group ``e3.runners``), found without importlib.metadata when
there are none: a real distribution on a real ``sys.path`` entry, a real ``e3 start``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from e3.runners.registry import may_have_plugins
from tests_support import run_cli, run_e3

_PLUGIN = '''
import os
from pathlib import Path


class AsksOnly:
    """Accepts nothing, but leaves a mark each time it is asked."""

    name = "asks-only"

    def accepts(self, argv):
        with open(os.environ["E3_TEST_PLUGIN_MARK"], "a") as f:
            f.write(argv[0] + "\\n")
        return False

    async def run(self, request, on_start):
        raise AssertionError("never accepted")

    async def close(self):
        pass


def factory():
    return AsksOnly()
'''


def _install_plugin(site: Path, header: str = "[e3.runners]") -> Path:
    """A distribution with an ``e3.runners`` entry point, as pip would lay it out."""
    site.mkdir()
    (site / "e3_asks_only.py").write_text(_PLUGIN)
    info = site / "e3_asks_only-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: e3-asks-only\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"{header}\nasks-only = e3_asks_only:factory\n")
    return site


@pytest.fixture
def deployed(tmp_path: Path, build_example: Callable[[str], Path]) -> Path:
    repo = tmp_path / "repo"
    assert run_cli("repo", "create", repo).code == 0
    assert run_cli("package", "import", repo, build_example("hello")).code == 0
    assert run_cli("workspace", "deploy", repo, "ws", "hello").code == 0
    return repo


def test_an_installed_plugin_is_asked_first(tmp_path: Path, deployed: Path) -> None:
    site = _install_plugin(tmp_path / "site")
    mark = tmp_path / "asked"
    r = run_e3(
        "start", deployed, "ws", env={"PYTHONPATH": str(site), "E3_TEST_PLUGIN_MARK": str(mark)}
    )
    assert r.code == 0, r.err
    assert "Executed: 1" in r.out  # the built-in runner ran the task the plugin declined
    assert set(mark.read_text().splitlines()) == {"east-py"}  # asked, before the built-ins


def test_the_look_finds_the_group_only_where_it_is(tmp_path: Path) -> None:
    assert may_have_plugins([str(_install_plugin(tmp_path / "a", "[ e3.runners ]"))])
    assert not may_have_plugins([str(_install_plugin(tmp_path / "b", "[e3.runners.other]"))])
    assert not may_have_plugins([str(tmp_path / "missing"), str(tmp_path / "b")])
    (tmp_path / "deps.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    assert may_have_plugins([str(tmp_path / "deps.zip")])  # cannot look inside: maybe


def test_with_no_plugin_a_run_does_not_load_importlib_metadata(deployed: Path) -> None:
    code = (
        "import sys\n"
        "from e3.cli import main\n"
        f"assert main(['start', {str(deployed)!r}, 'ws']) == 0\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "False"
