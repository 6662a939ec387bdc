"""The runner interface, its request and result, and the registry that picks a runner.

Which runners exist (the built-in ones and plugins) is :mod:`e3.runners.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from e3.errors import ClusterUnavailable, ClusterVersionMismatch, E3Error, RunnerError

#: Errors a runner raises when it cannot go on at all (its cluster is gone or
#: unfit): the run stops instead of recording a failure of the task.
STOPS_RUN: tuple[type[E3Error], ...] = (ClusterUnavailable, ClusterVersionMismatch)


@dataclass(frozen=True)
class TaskFiles:
    """The task behind a command, for runners that execute it on another machine.

    Such a runner cannot use the local paths in ``argv``: it evaluates the
    command IR again with paths of its own, fetching the inputs by hash, and
    writes the output it gets back to ``output``.
    """

    command_hash: str
    command_ir: bytes
    #: ``(hash, local path of the stored object)`` per input, in order.
    inputs: tuple[tuple[str, str], ...]
    output: Path
    repo_root: str
    log_limit: int


@dataclass(frozen=True)
class RunRequest:
    """One command to run for a task execution.

    The command reads its inputs and writes its output at paths already in
    ``argv``. Its stdout and stderr replace the content of the ``stdout`` and
    ``stderr`` files (the engine copies them into the execution's logs).
    """

    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str]
    stdout: Path
    stderr: Path
    timeout: float | None = None
    label: str = ""
    files: TaskFiles | None = None
    #: Largest output the caller takes back in :attr:`RunResult.output` instead of as
    #: the file in ``argv`` (0: always the file). Runners may ignore it.
    inline_output: int = 0


@dataclass(frozen=True)
class RunResult:
    """How a command ended.

    ``exit_code`` is set when it exited, ``signal`` when it was killed by one,
    ``error`` when the runner could not run it at all.
    """

    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None
    timed_out: bool = False
    pid: int = 0
    #: Where it ran, when that is not this machine (a cluster worker's address).
    worker: str | None = None
    #: The output, when the runner has it in memory (see ``RunRequest.inline_output``);
    #: ``None``: it is the output file, if the command wrote one.
    output: bytes | None = None
    #: The output is e3's canonical Beast2 of a value of the function's own output type
    #: (the warm East worker encodes it so); the engine still checks the type.
    canonical: bool = False
    #: Bytes in the ``stdout`` and ``stderr`` files, when the runner knows them
    #: (``(0, 0)``: nothing to copy into the execution's logs).
    log_sizes: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        """Exited with status 0."""
        return self.exit_code == 0 and self.error is None and not self.timed_out

    def describe(self) -> str:
        """One line saying how it ended."""
        if self.timed_out:
            return "timed out"
        if self.error is not None:
            return self.error
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        return f"exit code {self.exit_code}"


#: Called with the pid running the command as soon as it is known.
OnStart = Callable[[int], None]


class Runner(Protocol):
    """Executes commands.

    Implementations must be cancellable: if the awaiting coroutine is
    cancelled, the command's processes are killed before it returns.
    """

    name: str

    def accepts(self, argv: Sequence[str]) -> bool:
        """Whether this runner can run ``argv`` (a process runner accepts anything)."""
        ...

    async def run(self, request: RunRequest, on_start: OnStart) -> RunResult:
        """Run one command to completion."""
        ...

    async def close(self) -> None:
        """Release pooled resources (workers)."""
        ...


@dataclass
class RunnerRegistry:
    """Runner factories by name; the first runner (in ``order``) that accepts an argv runs it."""

    factories: dict[str, Callable[[], Runner]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    #: Called once, on the first :meth:`choose`, to add plugin runners (see the registry module).
    load_plugins: Callable[[RunnerRegistry], None] | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    _instances: dict[str, Runner] = field(default_factory=dict)

    def register(self, name: str, factory: Callable[[], Runner], *, first: bool = False) -> None:
        """Add a runner (``first``: try it before the others)."""
        self.factories[name] = factory
        if name in self.order:
            self.order.remove(name)
        self.order.insert(0, name) if first else self.order.append(name)

    def get(self, name: str) -> Runner:
        """The (single) instance of a runner."""
        if name not in self._instances:
            try:
                self._instances[name] = self.factories[name]()
            except KeyError:
                raise RunnerError(f"unknown runner {name!r}") from None
        return self._instances[name]

    def choose(self, argv: Sequence[str]) -> Runner:
        """The first registered runner that accepts ``argv``.

        Plugin runners (entry-point group ``e3.runners``) are loaded on the
        first call, and tried before the built-in ones.
        """
        if self.load_plugins is not None:
            loader, self.load_plugins = self.load_plugins, None
            loader(self)
        for name in self.order:
            runner = self.get(name)
            if runner.accepts(argv):
                return runner
        raise RunnerError(f"no runner accepts the command {argv[0]!r}")

    async def prepare(self) -> None:
        """Instantiate every runner and let those that connect somewhere do it now.

        A runner with an ``async prepare()`` method (a cluster runner) connects and
        checks what it connects to, so that a run is refused before it starts.
        """
        for name in list(self.order):
            hook = getattr(self.get(name), "prepare", None)
            if hook is not None:
                await hook()

    async def close(self) -> None:
        """Close every instantiated runner (and shared helpers such as the guardian)."""
        for runner in self._instances.values():
            await runner.close()
        self._instances.clear()
        for closer in self.closers:
            closer()
