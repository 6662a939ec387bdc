"""The ``e3`` console script's entry point: a Ctrl-C is handled from e3's first instruction.

The console script pip writes runs ``import re, sys`` and then ``from e3.launcher import
entry``; Python runs ``e3/__init__.py`` (which imports and calls nothing) and then this
module, whose first call installs a SIGINT handler. From then on an interrupt ends the
command with ``Interrupted.`` and exit code 130:

* until the CLI's modules are loaded (in :func:`entry`), by
  :func:`_interrupted_while_starting`, which leaves at once (nothing has been read or
  written yet, so there is nothing to clean up);
* from then on, by the ``KeyboardInterrupt`` handling of :func:`entry` and of the CLI, as
  Python's own handler is put back first (asyncio and the dataflow engine install their
  own handlers only over Python's);
* once the command is over, not at all: SIGINT is blocked, and its exit code stands.

Before that (the interpreter's own start-up, ``site``, the script's ``import re``, the
search for the ``e3`` package) no e3 code has run: a Ctrl-C there ends the process as it
ends any Python program, silently by the signal, with the interpreter's traceback, or with
"Fatal Python error" if ``site`` was being imported. docs/reliability.md gives the rule the
fuzzer and the tests hold e3 to, and the measured size of that window.

So: only names already loaded at interpreter start-up (``os``, ``sys``, the ``_signal``
core of :mod:`signal`) are imported here, and importing this module is starting the
``e3`` command: nothing else should import it.
"""

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import signal as _signal
    from typing import NoReturn
else:
    # The C module behind `signal`, already loaded by the interpreter: `import signal`
    # would build its enums first (a few hundred microseconds with no handler in place).
    import _signal

#: e3.errors.EXIT_INTERRUPTED, not imported from there (see the module docstring);
#: tests/cli/test_cli_commands.py checks that they agree.
EXIT_INTERRUPTED = 130


def _interrupted_while_starting(signum: int, frame: object) -> "NoReturn":
    """SIGINT before the CLI is loaded: nothing has been done, so leave now."""
    os.write(2, b"Interrupted.\n")
    os._exit(EXIT_INTERRUPTED)


# Installed first and checked afterwards, so that no call runs before it is in place. The
# call itself first runs the handler in place for any SIGINT already received (Python's:
# a KeyboardInterrupt here); on a busy machine the process can be descheduled just before
# it, which stretches those few instructions to milliseconds: found by the sweep.
try:
    _previous = _signal.signal(_signal.SIGINT, _interrupted_while_starting)
except KeyboardInterrupt:
    _interrupted_while_starting(_signal.SIGINT, None)
if _previous is not _signal.default_int_handler:
    # SIGINT is ignored (`nohup`, a background job) or someone else's: leave it so.
    _signal.signal(_signal.SIGINT, _previous)


def entry() -> None:
    """Run the CLI with interrupts handled from the first moment to the last."""
    try:
        try:
            # Still under _interrupted_while_starting: importing the CLI changes nothing.
            _collect_less_often()
            from e3.cli import main

            if _signal.getsignal(_signal.SIGINT) is _interrupted_while_starting:
                _signal.signal(_signal.SIGINT, _signal.default_int_handler)
            code = main()
        finally:
            # The command is over, or cut short: from here no Ctrl-C can change how it
            # ends. A blocked SIGINT stays pending until the process exits; without
            # this, one landing while Python tears down (after it has reset its
            # handlers) kills the process by the signal after the work is done.
            _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT})
    except BaseException as exc:
        if not _is_interrupt(exc):
            raise
        sys.stderr.write("Interrupted.\n")
        code = EXIT_INTERRUPTED
    sys.exit(code)


#: Container objects allocated between two collections of the youngest generation
#: (Python's default: 700). See :func:`_collect_less_often`.
YOUNG_GENERATION = 100_000


def _collect_less_often() -> None:
    """Run the cycle collector every 100,000 allocations instead of every 700.

    An ``e3`` command first imports some 300 modules (east-py, asyncio, e3) whose
    objects all live until it exits, and a run then builds its graph, refs and
    records, which live until the run ends: at Python's default the collector
    ran 74 times for an up-to-date one-task ``e3 start`` (8 ms of 120) and 629
    times for a cached 10,000-task one (103 ms of 890), walking those objects
    again and again and finding almost nothing. Cycles are still collected, a
    little later; only this process (the console script, not a program that
    embeds e3) is affected.
    """
    import gc

    gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])


def _is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt, or was raised from one.

    Python 3.11 turns a KeyboardInterrupt that lands in a ``__set_name__`` call (a dataclass
    field, while a module defines its classes) into a RuntimeError raised from it: the
    user still pressed Ctrl-C. (:func:`e3.cli.main` has the same test for its commands;
    this module imports nothing from e3 on the way to "Interrupted.".)
    """
    cause: BaseException | None = exc
    for _ in range(100):  # a chain of causes is short; a cycle must not hang us
        if cause is None:
            return False
        if isinstance(cause, KeyboardInterrupt):
            return True
        cause = cause.__cause__
    return False
