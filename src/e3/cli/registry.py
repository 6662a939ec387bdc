"""The table of top-level commands, shared by the parser and the command modules."""

from __future__ import annotations

import argparse
from typing import Any

#: Top-level command → (module that registers it, one-line help). Only the module
#: of the command being run is imported, which keeps start-up short.
COMMANDS: dict[str, tuple[str, str]] = {
    "repo": ("e3.cli.repo", "create, inspect, remove and garbage-collect repositories"),
    "package": ("e3.cli.package", "build, import, export, list and remove packages"),
    "workspace": ("e3.cli.workspace", "create, deploy, list, remove, export, import workspaces"),
    "list": ("e3.cli.data", "list workspaces or datasets"),
    "get": ("e3.cli.data", "print a dataset's value"),
    "set": ("e3.cli.data", "set a dataset from a file"),
    "status": ("e3.cli.data", "a dataset's type, state, hash and size"),
    "convert": ("e3.cli.convert_cmd", "convert a value between formats"),
    "start": ("e3.cli.start", "run the tasks of a workspace whose inputs changed"),
    "cancel": ("e3.cli.start", "cancel the dataflow running in a workspace"),
    "logs": ("e3.cli.logs", "show (or follow) a task's stdout and stderr"),
    "log": ("e3.cli.logs", "list a workspace's past dataflow runs"),
    "run": ("e3.cli.run", "run one task of a package on input files"),
    "watch": ("e3.cli.watch", "rebuild, redeploy (and rerun) a package on every save of its file"),
    "view": ("e3.cli.view", "a web view of a repository's dataflows, served on 127.0.0.1"),
    "serve": ("e3.cli.serve", "serve repositories over HTTP (the e3 API server)"),
    "login": ("e3.cli.auth", "log in to an e3 server"),
    "logout": ("e3.cli.auth", "forget the login to an e3 server"),
    "auth": ("e3.cli.auth", "stored logins: status, token, whoami"),
}


def add_command(sub: Any, name: str, *parents: argparse.ArgumentParser) -> Any:
    """Add top-level command ``name`` with its help text from :data:`COMMANDS`."""
    return sub.add_parser(name, parents=list(parents), help=COMMANDS[name][1])
