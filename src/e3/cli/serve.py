"""``e3 serve``: the API server from the main CLI (same options as ``e3-api-server``)."""

from __future__ import annotations

import argparse
from typing import Any

from e3.cli.context import Context
from e3.cli.registry import add_command


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``e3 serve``."""
    from e3.server.options import add_options

    p = add_command(sub, "serve")
    add_options(p)
    p.set_defaults(handler=cmd_serve)


def cmd_serve(ctx: Context, args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from e3.server.main import run_server

    return run_server(args, stdout=ctx.out.stdout)
