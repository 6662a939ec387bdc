"""Random packages and the independent oracle that says what their datasets must hold.

A :class:`PackageSpec` is plain data (inputs, tasks, their dependencies and
arithmetic), drawn from a seeded :class:`random.Random`. :meth:`PackageSpec.build`
turns it into a real e3 package (East functions and shell tasks);
:meth:`PackageSpec.expected` computes, in plain Python and without e3, what
every task output must be for given input values, or that the task must fail
(or be skipped because something it needs failed).

Shapes: random DAGs, long chains, wide fan-outs and diamonds; task kinds: East
arithmetic (some of which fail on certain inputs), shell copies, shell tasks
that always fail, slow shell tasks; an optional large Array input summed by a
task; names drawn from ASCII, accented and CJK letters, spaces and dots.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

#: Every East task's result is reduced modulo this prime, so values stay small.
MODULUS = 1_000_003
#: What the oracle says about a task that fails, or that cannot run because an upstream failed.
FAIL = "fail"
SKIP = "skip"

_NAME_PARTS = ["a", "b", "x", "y", "total", "élan", "数据", "naïve", "λ", "with space", "dot.ted"]


@dataclass(frozen=True)
class TaskSpec:
    """One task: ``kind`` is ``east``, ``copy`` (shell), ``shell_fail`` or ``slow`` (shell)."""

    name: str
    deps: tuple[str, ...]  # input names or task names, in parameter order
    kind: str = "east"
    mul: int = 1
    add: int = 0
    fail_mod: int = 0  # East tasks: fail when sum(inputs) % fail_mod == fail_rem (0: never)
    fail_rem: int = 0


@dataclass(frozen=True)
class PackageSpec:
    """A generated package: its inputs (with defaults) and tasks in dependency order."""

    name: str
    version: str
    inputs: dict[str, int]
    tasks: tuple[TaskSpec, ...]
    big_input: str | None = None  # an Array<Integer> input, summed by task "sum_<name>"
    big_default: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    # ── the oracle ──────────────────────────────────────────────────────
    def expected(self, values: dict[str, Any]) -> dict[str, int | str]:
        """Every task's output for ``values`` (input name → value), or FAIL / SKIP."""
        env: dict[str, Any] = dict(values)
        out: dict[str, int | str] = {}
        for t in self.tasks:
            args = [env[d] for d in t.deps]
            if any(a in (FAIL, SKIP) for a in args):
                out[t.name] = env[t.name] = SKIP
                continue
            if t.kind == "sum":
                result: int | str = sum(args[0]) % MODULUS
            elif t.kind in ("copy", "slow"):
                result = args[0]
            elif t.kind == "shell_fail":
                result = FAIL
            else:
                s = sum(args)
                if t.fail_mod and s % t.fail_mod == t.fail_rem:
                    result = FAIL
                else:
                    result = (s * t.mul + t.add) % MODULUS
            out[t.name] = env[t.name] = result
        return out

    def defaults(self) -> dict[str, Any]:
        """The input values right after a deploy."""
        values: dict[str, Any] = dict(self.inputs)
        if self.big_input is not None:
            values[self.big_input] = list(self.big_default)
        return values

    # ── the real package ────────────────────────────────────────────────
    def build(self) -> Any:
        """The e3 package this spec describes."""
        from east import ArrayType, East, IntegerType, StringType

        import e3

        nodes: dict[str, Any] = {
            name: e3.input(name, IntegerType, default=value) for name, value in self.inputs.items()
        }
        if self.big_input is not None:
            nodes[self.big_input] = e3.input(
                self.big_input, ArrayType(IntegerType), default=list(self.big_default)
            )
        for t in self.tasks:
            deps = [nodes[d] for d in t.deps]
            if t.kind == "sum":
                fn = East.function(
                    [ArrayType(IntegerType)],
                    IntegerType,
                    lambda b, xs: East.Integer.remainder(xs.sum(), MODULUS),
                )
                nodes[t.name] = e3.task(t.name, deps, fn)
            elif t.kind == "copy":
                nodes[t.name] = e3.custom_task(t.name, deps, IntegerType, "cp {inputs[0]} {output}")
            elif t.kind == "slow":
                nodes[t.name] = e3.custom_task(
                    t.name, deps, IntegerType, "sleep 0.05; cp {inputs[0]} {output}"
                )
            elif t.kind == "shell_fail":
                nodes[t.name] = e3.custom_task(
                    t.name, deps, IntegerType, "echo failing on purpose >&2; exit 3"
                )
            else:
                nodes[t.name] = e3.task(t.name, deps, _east_fn(t, len(deps), StringType))
        # Every input is listed: one that no task reads is still part of the package.
        return e3.package(self.name, self.version, *nodes.values())

    def mutated(self, rng: random.Random, version: str) -> PackageSpec:
        """The same inputs and task names, some task arithmetic changed (a new version)."""
        tasks = list(self.tasks)
        for i in rng.sample(range(len(tasks)), k=max(1, len(tasks) // 3)):
            if tasks[i].kind == "east":
                tasks[i] = replace(tasks[i], add=tasks[i].add + rng.randint(1, 5))
        return replace(self, version=version, tasks=tuple(tasks))


def _east_fn(t: TaskSpec, arity: int, string_type: Any) -> Any:
    from east import East, IntegerType

    def body(b: Any, *xs: Any) -> Any:
        s = xs[0]
        for x in xs[1:]:
            s = s + x
        if t.fail_mod:
            b.if_(
                East.Integer.remainder(s, t.fail_mod) == t.fail_rem,
                lambda b: b.error(East.value(f"{t.name}: unlucky input", string_type)),
            )
        return East.Integer.remainder(s * t.mul + t.add, MODULUS)

    return East.function([IntegerType] * arity, IntegerType, body)


# ── generation ──────────────────────────────────────────────────────────────


def _names(rng: random.Random, count: int, prefix: str, taken: set[str]) -> list[str]:
    out = []
    while len(out) < count:
        if rng.random() < 0.3:
            name = f"{rng.choice(_NAME_PARTS)}{len(taken)}"
        else:
            name = f"{prefix}{len(taken)}"
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def random_package(
    rng: random.Random, *, name: str = "fuzz", version: str = "1.0.0", max_tasks: int = 12
) -> PackageSpec:
    """A random package (see the module docstring for the shapes and kinds)."""
    shape = rng.choice(["dag", "dag", "chain", "fanout", "diamond"])
    taken: set[str] = set()
    inputs = {n: rng.randint(0, 1000) for n in _names(rng, rng.randint(1, 3), "in", taken)}
    n = rng.randint(1, max_tasks)
    tasks: list[TaskSpec] = []
    available = list(inputs)
    big = None
    big_default: tuple[int, ...] = ()
    if rng.random() < 0.1:
        big = _names(rng, 1, "big", taken)[0]
        big_default = tuple(rng.randint(0, 1000) for _ in range(rng.choice([10, 1000, 50_000])))
        (sum_name,) = _names(rng, 1, "sum", taken)
        tasks.append(TaskSpec(sum_name, (big,), "sum"))
        available.append(sum_name)
    for tname in _names(rng, n, "t", taken):
        if shape == "chain":
            deps: tuple[str, ...] = (available[-1],)
        elif shape == "fanout":
            deps = (rng.choice(list(inputs)),)
        elif shape == "diamond" and len(available) >= 2:
            deps = tuple(rng.sample(available[-3:], k=min(2, len(available[-3:]))))
        else:
            deps = tuple(rng.sample(available, k=min(len(available), rng.randint(1, 3))))
        roll = rng.random()
        if roll < 0.12:
            kind = "copy"
        elif roll < 0.15:
            kind = "slow"
        elif roll < 0.17:
            kind = "shell_fail"
        else:
            kind = "east"
        fail_mod = rng.choice([0, 0, 0, 5, 11]) if kind == "east" else 0
        tasks.append(
            TaskSpec(
                tname,
                deps,
                kind,
                mul=rng.randint(1, 3),
                add=rng.randint(0, 9),
                fail_mod=fail_mod,
                fail_rem=rng.randrange(fail_mod) if fail_mod else 0,
            )
        )
        available.append(tname)
    return PackageSpec(name, version, inputs, tuple(tasks), big, big_default)
