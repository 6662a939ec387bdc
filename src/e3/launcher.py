"""The ``e3`` console script's entry point, kept apart from :mod:`e3.cli`.

A Ctrl-C that arrives while the CLI is still importing its modules (the first tens of
milliseconds) would otherwise end in a KeyboardInterrupt traceback from deep inside
the standard library. This module imports nothing heavy, so the CLI's own imports
already run under its handler: the user sees ``Interrupted.`` and exit code 130
whenever the interrupt comes.
"""

from __future__ import annotations

import sys


def entry() -> None:
    """Run the CLI with interrupts handled from the first moment."""
    try:
        from e3.cli import main

        code = main()
    except KeyboardInterrupt:
        code = _interrupted()
    except RuntimeError as exc:
        # An interrupt inside a class body's __set_name__ (while the standard library is
        # still being imported) reaches here wrapped in a RuntimeError.
        if not isinstance(exc.__cause__, KeyboardInterrupt):
            raise
        code = _interrupted()
    sys.exit(code)


def _interrupted() -> int:
    from e3.errors import EXIT_INTERRUPTED

    sys.stderr.write("Interrupted.\n")
    return EXIT_INTERRUPTED
