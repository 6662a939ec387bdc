"""``e3 view <repo>``: the web view of a repository, served on 127.0.0.1.

A local repository is served (as ``default``) by the API server on a free port
of 127.0.0.1, without a login, and the URL of its page is printed; Ctrl-C
stops it. For a server URL nothing is served: the URL of that server's page
for the repository is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from e3.cli.context import Context
from e3.cli.registry import add_command


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``e3 view``."""
    v = add_command(sub, "view")
    v.add_argument("repo")
    v.add_argument("workspace", nargs="?", help="open this workspace's dataflow")
    v.add_argument("-p", "--port", type=int, default=0, help="port (default: a free one)")
    v.add_argument("--open", action="store_true", help="open the page in a web browser")
    v.set_defaults(handler=cmd_view)


def page_url(base: str, repo: str, workspace: str | None) -> str:
    """The page of a repository (or of one of its workspaces) on a server."""
    from urllib.parse import quote

    url = f"{base.rstrip('/')}/ui/#/repos/{quote(repo, safe='')}"
    return url + (f"/ws/{quote(workspace, safe='')}" if workspace else "")


def cmd_view(ctx: Context, args: argparse.Namespace) -> int:
    """Serve the page (or, for a server, print its address)."""
    from e3.api.open import is_remote
    from e3.errors import RepositoryNotFound, UsageError

    if is_remote(args.repo):
        base, sep, name = args.repo.rstrip("/").rpartition("/repos/")
        if not sep or not name:
            raise UsageError(f"{args.repo}: expected http(s)://host:port/repos/<name>")
        ctx.out.line(page_url(base, name, args.workspace))
        return 0
    from e3.api.open import is_repository
    from e3.server.main import run_server
    from e3.server.options import add_options

    if not is_repository(args.repo):
        raise RepositoryNotFound(f"no e3 repository at {args.repo}", repo=str(args.repo))
    options = argparse.ArgumentParser(add_help=False)
    add_options(options)
    served = options.parse_args(["--repo", str(Path(args.repo)), "--port", str(args.port)])
    out = ctx.out.stdout

    def announce(base: str) -> None:
        url = page_url(base, "default", args.workspace)
        out.write(f"e3 view: {url}\n(serving {args.repo} on 127.0.0.1; Ctrl-C stops)\n")
        out.flush()
        if args.open:
            import webbrowser

            webbrowser.open(url)

    run_server(served, stdout=out, announce=announce)
    sys.stdout.flush()
    return 0
