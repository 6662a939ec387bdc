"""What the power-cut checks expect of a run that a ``set`` raced.

A set made while a run goes is usually picked up by that run, but one that
lands after the run's last look at its inputs is left to the next ``start``:
the checks must accept either outcome, and still refuse outputs that mix
the two (some tasks from the old value, some from the new).
"""

from __future__ import annotations

from typing import Any

from fuzz.powercut.checks import fold, run_oracles
from fuzz.powercut.ops import Op
from fuzz.powercut.workloads import package_spec, value_key, value_of

SPEC = package_spec(6)
DEFAULTS = {k: value_key(v) for k, v in SPEC.defaults().items()}
INITIAL = {"repo": True, "packages": ["pc@1.0.0"], "inputs": {"ws": dict(DEFAULTS)}, "started": []}


def _marker(index: int, kind: str, payload: dict[str, Any]) -> Op:
    return Op(index, kind, index, index, payload=payload)


def _raced_run(new_a: int) -> list[Op]:
    run = {"kind": "start", "ws": "ws"}
    put = {"kind": "set", "ws": "ws", "input": "a", "value": new_a}
    return [
        _marker(0, "begin", run),
        _marker(1, "begin", put),
        _marker(2, "ack", put),
        _marker(3, "ack", run),
    ]


def _outputs(keys: dict[str, Any]) -> dict[str, Any]:
    values = {k: value_of(v) for k, v in keys.items()}
    return {t: value_key(v) for t, v in SPEC.expected(values).items()}


def test_a_run_raced_by_a_set_may_have_used_either_value_but_nothing_else() -> None:
    ops = _raced_run(new_a=500)
    exp = fold(INITIAL, ops, len(ops), DEFAULTS)
    assert "ws" in exp.started and "ws" not in exp.running
    assert exp.inputs["ws"]["a"] == {500}  # the set was acknowledged: only its value now
    assert exp.run_inputs["ws"]["a"] == {DEFAULTS["a"], 500}
    held = {**DEFAULTS, "a": 500}
    allowed = run_oracles(SPEC, held, exp.run_inputs["ws"])
    old, new = _outputs(DEFAULTS), _outputs(held)
    assert old != new
    assert old in allowed and new in allowed
    mixed = {t: (old[t] if i % 2 else new[t]) for i, t in enumerate(old)}
    assert mixed not in (old, new)
    assert mixed not in allowed


def test_a_run_with_no_set_during_it_must_match_the_inputs_held() -> None:
    run = {"kind": "start", "ws": "ws"}
    ops = [_marker(0, "begin", run), _marker(1, "ack", run)]
    exp = fold(INITIAL, ops, len(ops), DEFAULTS)
    assert run_oracles(SPEC, dict(DEFAULTS), exp.run_inputs["ws"]) == [_outputs(DEFAULTS)]
    assert run_oracles(SPEC, dict(DEFAULTS), {}) == [_outputs(DEFAULTS)]


def test_a_set_after_the_run_was_acknowledged_is_not_the_runs() -> None:
    run = {"kind": "start", "ws": "ws"}
    put = {"kind": "set", "ws": "ws", "input": "a", "value": 7}
    ops = [_marker(0, "begin", run), _marker(1, "ack", run), _marker(2, "begin", put)]
    exp = fold(INITIAL, ops, len(ops), DEFAULTS)
    assert "ws" not in exp.started  # outputs are not expected current until the next start
    assert exp.run_inputs["ws"]["a"] == {DEFAULTS["a"]}
