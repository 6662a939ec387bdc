"""The reliability tools in their CI budget (``python -m fuzz <tool> --quick``).

The long runs happen on demand (see docs/reliability.md); here each tool runs its fixed
small budget as a real subprocess, so a regression in the engine, the tools or their
invariants turns CI red. Each tool exits 1 and prints the reproducing seed and steps
when an invariant fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests_support import ROOT

pytestmark = pytest.mark.slow


def _run_tool(*args: str, timeout: float = 240) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"python -m fuzz {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_scenario_fuzzer_quick() -> None:
    out = _run_tool("scenario", "--quick")
    assert "3 seeds, 45 operations" in out
    assert "0 invariant violations" in out


def test_fault_injection_quick() -> None:
    out = _run_tool("faults", "--quick")
    assert "0 invariant violations" in out
    assert "engine SIGKILL" in out


def test_hostile_inputs_quick() -> None:
    out = _run_tool("hostile", "--quick")
    for target in ("beast2", "json", "east", "api", "paths", "zip", "bombs"):
        assert target in out
    assert "findings" in out
    assert "refused (value_too_large)" in out  # the bombs target reports its verdicts


@pytest.mark.skipif(
    shutil.which("strace") is None, reason="strace not installed (.ci/run installs it)"
)
def test_powercut_quick() -> None:
    out = _run_tool("powercut", "--quick")
    assert "0 violations" in out
    for workload in ("set", "start"):
        assert f"  {workload} " in out
