"""The ``e3`` command line: a thin layer over the library.

``main(argv) -> int`` builds an argparse parser from one module per command
group, runs the chosen handler and turns errors into one ``Error: …`` line and
the exit code that :data:`e3.errors.ERROR_TABLE` assigns. Handlers import the
heavy parts (east-py, storage) lazily, so ``e3 --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from e3.base.config import ENV_VARS, load_settings
from e3.cli.context import Context
from e3.cli.output import Output
from e3.cli.registry import COMMANDS
from e3.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, E3Error


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("e3-engine")
    except PackageNotFoundError:
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``, resolved only when asked (package metadata is slow to load)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(f"e3 {_version()}")
        parser.exit()


class _ParseFailed(Exception):
    """A trial parse failed (see :func:`_with_default_repo`)."""


class _Parser(argparse.ArgumentParser):
    """argparse with e3's error convention (one line, exit code 2)."""

    #: While set, errors raise :class:`_ParseFailed` instead of printing and exiting.
    trial = False

    def error(self, message: str) -> None:  # type: ignore[override]
        if _Parser.trial:
            raise _ParseFailed(message)
        self.print_usage(sys.stderr)
        print(f"Error: {message}", file=sys.stderr)
        raise SystemExit(2)


#: Commands whose first word names a group (``e3 repo gc <repo>``).
_GROUPS = ("repo", "package", "workspace", "auth")


def _with_default_repo(
    parser: argparse.ArgumentParser, argv: list[str], default: str | None
) -> list[str]:
    """``argv`` with ``E3_REPO`` put where a left-out ``<repo>`` argument belongs.

    An explicit ``<repo>`` always wins: ``E3_REPO`` is used only when the
    command does not parse without it and does with it.
    """
    if not default:
        return argv
    _Parser.trial = True
    try:
        try:
            parser.parse_args(argv)
            return argv
        except _ParseFailed:
            pass
        words = [i for i, a in enumerate(argv) if not a.startswith("-")]
        if not words:
            return argv
        at = words[0] + 1
        if argv[words[0]] in _GROUPS and len(words) > 1:
            at = words[1] + 1
        candidate = [*argv[:at], default, *argv[at:]]
        try:
            parser.parse_args(candidate)
            return candidate
        except (_ParseFailed, SystemExit):
            return argv
    finally:
        _Parser.trial = False


def _target(argv: Sequence[str] | None) -> str | None:
    args = sys.argv[1:] if argv is None else argv
    for a in args:
        if not a.startswith("-"):
            return a if a in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; the command ``only`` gets its full definition, the others a stub.

    ``only=None`` defines every command fully (used by tests and documentation).
    """
    env_help = "\n".join(f"  {k:<22} {v}" for k, v in ENV_VARS.items())
    parser = _Parser(
        prog="e3",
        description="e3: durable, content-addressed dataflows of East tasks.",
        epilog=f"environment variables:\n{env_help}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="print the version")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    sub.required = True
    registered: set[str] = set()
    modules = dict.fromkeys(mod for mod, _ in COMMANDS.values())
    for mod in modules:
        names = [n for n, (m, _) in COMMANDS.items() if m == mod]
        if only is None or only in names:
            importlib.import_module(mod).register(sub, common)
            registered.update(names)
    for name, (_, help_text) in COMMANDS.items():
        if name not in registered:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser(_target(argv) or "")
    settings = load_settings()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(_with_default_repo(parser, words, settings.repo_override))
    except SystemExit as exc:
        return int(exc.code or 0)
    out = Output(json_mode=getattr(args, "json", False), stdout=stdout, stderr=stderr)
    ctx = Context(settings, out)
    try:
        try:
            code = args.handler(ctx, args)
        finally:
            ctx.close()
        return int(code or 0)
    except E3Error as exc:
        out.error(f"Error: {exc.message}")
        return exc.spec.exit_code
    except KeyboardInterrupt:
        out.error("Interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `e3 get … | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if _raised_from_interrupt(exc):
            out.error("Interrupted.")
            return EXIT_INTERRUPTED
        out.error(f"Internal error: {type(exc).__name__}: {exc}")
        if settings.debug:
            import traceback

            traceback.print_exc(file=out.stderr)
        else:
            out.error("(set E3_DEBUG=1 for a traceback; please report this)")
        return EXIT_INTERNAL


def _raised_from_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` was raised from a KeyboardInterrupt.

    Python 3.11 turns one that lands in a ``__set_name__`` call (a dataclass field, while a
    module loads) into a RuntimeError raised from it: a Ctrl-C, not a bug of e3 (the
    launcher has the same test for what escapes :func:`main`).
    """
    cause = exc.__cause__
    for _ in range(100):  # a chain of causes is short; a cycle must not hang us
        if cause is None or isinstance(cause, KeyboardInterrupt):
            return cause is not None
        cause = cause.__cause__
    return False


def entry() -> None:
    """Run the CLI and exit (the console script goes through :mod:`e3.launcher`)."""
    sys.exit(main())
