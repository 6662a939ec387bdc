"""Issue 20: a Ctrl-C at any moment of ``e3``'s first 100 ms ends as the rule allows.

The scenario fuzzer (seed 7004) once interrupted ``e3 start`` while ``e3/__init__.py``
was importing ``typing``, before the launcher's handler: a KeyboardInterrupt traceback
through e3's code, and death by the signal. Here ``python -m fuzz interrupts --quick``
sends SIGINT to real ``e3 --help`` and ``e3 repo status <repo>`` processes every 1.5 ms
from 0 to 100 ms after their start (134 processes, 10-15 s) and judges every ending by
the rule of :mod:`fuzz.interrupts` (the one the scenario fuzzer applies): "Interrupted."
and exit 130, or the command's normal ending, or, only while Python itself is still
starting, death by the signal with nothing printed by e3 and the repository's tree
unchanged. On the code of issue 20 a few probes of every sweep landed in e3's unprotected
5-10 ms; on main just before this change (``e3/__init__`` no longer imported ``typing``,
but still ``__future__`` and ``importlib``, and the console script's ``re.sub`` line still
ran before the launcher's ``try``) the window was under a millisecond, which 1.5 ms steps
still hit in every run tried.

``e3 start`` is swept by ``python -m fuzz interrupts`` without ``--quick`` (to 300 ms) and
interrupted by the scenario fuzzer; it is left out here because SIGINT during its event
loop's set-up (docs/reliability.md, "Known limits") can still print asyncio's noise.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from fuzz.interrupts import BEFORE_E3, E3, RuleBroken, judge

from tests_support import ROOT

#: What CPython 3.11 printed (exit 1) for a SIGINT 43.5 ms into `e3 repo status` under load.
_FATAL_WITH_DUMP = """Fatal Python error: init_import_site: Failed to import the site module
Python runtime state: initialized
KeyboardInterrupt

Current thread 0x00007f04379e4b80 (most recent call first):
  <no Python frame>
"""


def test_a_fatal_start_up_error_with_a_stack_dump_is_before_e3() -> None:
    verdict = judge(1, "", _FATAL_WITH_DUMP, tree_changed=False, normal=(0,))
    assert verdict == BEFORE_E3


def test_a_fatal_start_up_error_is_refused_when_e3_had_run() -> None:
    e3_frame = f'  File "{E3}", line 99 in <module>\n'
    with pytest.raises(RuleBroken):
        judge(1, "", _FATAL_WITH_DUMP + e3_frame, tree_changed=False, normal=(0,))
    with pytest.raises(RuleBroken):
        judge(1, "", _FATAL_WITH_DUMP, tree_changed=True, normal=(0,))
    with pytest.raises(RuleBroken):  # a dump with no KeyboardInterrupt is some other crash
        judge(
            1,
            "",
            _FATAL_WITH_DUMP.replace("KeyboardInterrupt", ""),
            tree_changed=False,
            normal=(0,),
        )


#: What CPython 3.11 printed (exit 1) for a SIGINT 19.5 ms into `e3 repo status` under load.
_FATAL_STREAMS = """Fatal Python error: init_sys_streams: can't initialize sys standard streams
Python runtime state: core initialized
Traceback (most recent call last):
  File "<frozen importlib._bootstrap>", line 1176, in _find_and_load
  File "<frozen importlib._bootstrap>", line 1147, in _find_and_load_unlocked
  File "<frozen importlib._bootstrap>", line 690, in _load_unlocked
  File "<frozen importlib._bootstrap_external>", line 980, in exec_module
  File "<frozen io>", line 111, in <module>
TypeError: expected a message argument
"""


def test_an_interrupted_set_up_of_the_standard_streams_is_before_e3() -> None:
    assert judge(1, "", _FATAL_STREAMS, tree_changed=False, normal=(0,)) == BEFORE_E3
    with pytest.raises(RuleBroken):  # the same error from a frame of real code is not
        judge(
            1,
            "",
            _FATAL_STREAMS.replace('"<frozen io>"', '"/usr/lib/python3.11/io.py"'),
            tree_changed=False,
            normal=(0,),
        )
    with pytest.raises(RuleBroken):
        judge(1, "", _FATAL_STREAMS, tree_changed=True, normal=(0,))


def test_ctrl_c_at_every_moment_of_the_first_100_ms_ends_as_the_rule_allows() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fuzz", "interrupts", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "0 rule violations" in proc.stdout
    # Both sweeps reached e3's own handling, so the rule was held where it matters (a
    # sweep that only ever hit the interpreter's start-up would prove nothing).
    sweeps = re.findall(r"^e3 .*: (\d+) interrupts", proc.stdout, re.M)
    handled = re.findall(r"^  interrupted\s+(\d+)", proc.stdout, re.M)
    assert sweeps == ["67", "67"]
    assert len(handled) == 2 and all(int(n) > 0 for n in handled), proc.stdout
