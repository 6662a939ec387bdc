"""Server command-line options, shared by ``e3-api-server`` and ``e3 serve``.

Kept apart from :mod:`e3.server.main` so building the ``e3 serve`` parser
imports neither uvicorn nor Starlette.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_options(p: argparse.ArgumentParser) -> None:
    """Server options shared by ``e3-api-server`` and ``e3 serve``."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--repos",
        type=Path,
        metavar="DIR",
        help="serve every repository in DIR (and allow creating new ones over the API)",
    )
    which.add_argument(
        "--repo", type=Path, metavar="PATH", help="serve one repository as 'default'"
    )
    p.add_argument(
        "-H", "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    p.add_argument("-p", "--port", type=int, default=3000, help="port (default 3000; 0 picks one)")
    p.add_argument(
        "--url",
        metavar="URL",
        help="the URL clients reach this server by, when not http://HOST:PORT "
        "(behind a proxy; it is also the login issuer)",
    )
    p.add_argument("--cors", action="store_true", help="allow requests from any web origin")
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the tasks of every dataflow on this Dask cluster: tcp://HOST:PORT, or "
        "local:N for N local worker processes (default: $E3_CLUSTER, else here)",
    )
    p.add_argument(
        "--oidc",
        action="store_true",
        help="require logins, with the server as its own identity provider "
        "(approving a login needs the approval secret printed at start, or "
        "E3_AUTH_APPROVAL_SECRET; E3_AUTH_AUTO_APPROVE=1 approves at once, for tests)",
    )
    p.add_argument("--token-expiry", default="1h", help="access token lifetime (default 1h)")
    p.add_argument(
        "--refresh-token-expiry", default="90d", help="refresh token lifetime (default 90d)"
    )
    p.add_argument(
        "--auth-key",
        type=Path,
        metavar="PEM",
        help="accept tokens signed by this RS256 public key (external provider)",
    )
    p.add_argument("--auth-jwks", metavar="URL", help="accept tokens verified by this JWKS URL")
    p.add_argument("--auth-issuer", metavar="ISS", help="required issuer of external tokens")
    p.add_argument("--auth-audience", metavar="AUD", help="required audience of external tokens")
    p.add_argument(
        "--policy",
        type=Path,
        metavar="TOML",
        help="who may read, write and administer which repositories (needs --oidc or "
        "--auth-key/--auth-jwks; without it every authenticated caller is admin)",
    )
    add_limit_options(p)


def add_limit_options(p: argparse.ArgumentParser) -> None:
    """The ``--max-*`` and timeout options (defaults: :class:`e3.server.limits.Limits`)."""
    g = p.add_argument_group("limits (see docs/security.md)")
    g.add_argument(
        "--max-value",
        metavar="SIZE",
        default="256MiB",
        help="largest decoded dataset value accepted over the API (default %(default)s)",
    )
    g.add_argument(
        "--max-upload",
        metavar="SIZE",
        default="5GiB",
        help="largest upload, e.g. a package zip (default %(default)s)",
    )
    g.add_argument(
        "--max-zip-entry",
        metavar="SIZE",
        default="1GiB",
        help="most one entry of an imported zip may decompress to (default %(default)s)",
    )
    g.add_argument(
        "--max-zip-total",
        metavar="SIZE",
        default="4GiB",
        help="most one imported zip may decompress to (default %(default)s)",
    )
    g.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="most open connections (default 1000, or the file descriptor limit less 256)",
    )
    g.add_argument(
        "--header-timeout",
        metavar="SECONDS",
        default="10s",
        help="time to send a request's headers (default %(default)s)",
    )
    g.add_argument(
        "--body-timeout",
        metavar="SECONDS",
        default="30s",
        help="longest silence in a request body or unread reply (default %(default)s)",
    )
    g.add_argument(
        "--keep-alive",
        metavar="SECONDS",
        default="5s",
        help="idle kept-alive connections are closed after (default %(default)s)",
    )
