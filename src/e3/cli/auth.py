"""``e3 login | logout | auth status | auth token | auth whoami``: logins to e3 servers.

A login is stored per server origin (``http://host:port``) in the credentials
file (user-only permissions); any URL on the server selects it, so
``e3 login http://host:3000/repos/main`` works as well as the bare origin.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from e3.cli.context import Context
from e3.cli.registry import add_command


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``login``, ``logout`` and ``auth``."""
    p = add_command(sub, "login", common)
    p.add_argument("server", help="server URL (http(s)://host[:port])")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.set_defaults(handler=cmd_login)

    p = add_command(sub, "logout", common)
    p.add_argument("server", help="server URL")
    p.set_defaults(handler=cmd_logout)

    p = add_command(sub, "auth")
    a = p.add_subparsers(dest="auth_command", metavar="<subcommand>", required=True)
    s = a.add_parser(
        "status", parents=[common], help="list stored logins and whether they are valid"
    )
    s.set_defaults(handler=cmd_status)
    t = a.add_parser(
        "token", parents=[common], help="print a valid access token (refreshed if needed)"
    )
    t.add_argument("server", help="server URL")
    t.set_defaults(handler=cmd_token)
    w = a.add_parser("whoami", parents=[common], help="who a stored login identifies")
    w.add_argument("server", nargs="?", help="server URL (default: the only stored login)")
    w.set_defaults(handler=cmd_whoami)


def _store(ctx: Context) -> Any:
    from e3.client.credentials import CredentialStore

    return CredentialStore(ctx.settings.credentials_file)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


def cmd_login(ctx: Context, args: argparse.Namespace) -> int:
    """Log in with the device flow and store the tokens."""
    import httpx

    from e3.client.credentials import device_login, token_claims
    from e3.client.http import origin_of

    origin = origin_of(args.server)
    with httpx.Client(timeout=30.0) as http:
        cred = device_login(http, origin, show=ctx.out.line, open_browser=not args.no_browser)
    _store(ctx).put(origin, cred)
    claims = token_claims(cred.access_token)
    ctx.out.data({"server": origin, "subject": claims.get("sub"), "expires_at": cred.expires_at})
    ctx.out.line(f"Successfully logged in as: {claims.get('sub', '?')}")
    ctx.out.line(f"Token expires: {_when(cred.expires_at)}")
    return 0


def cmd_logout(ctx: Context, args: argparse.Namespace) -> int:
    """Forget a server's tokens."""
    from e3.client.http import origin_of

    origin = origin_of(args.server)
    store = _store(ctx)
    had = store.get(origin) is not None
    if had:
        store.put(origin, None)
    ctx.out.data({"server": origin, "logged_out": had})
    ctx.out.line(f"Logged out from {origin}" if had else f"Not logged in to {origin}")
    return 0


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    """List stored logins."""
    creds = _store(ctx).all()
    rows = [
        {
            "server": origin,
            "valid": not c.expired,
            "expires_at": c.expires_at,
            "refreshable": bool(c.refresh_token),
        }
        for origin, c in sorted(creds.items())
    ]
    ctx.out.data(rows)
    if not rows:
        ctx.out.line("No saved logins")
        return 0
    ctx.out.line("Saved logins:")
    for r in rows:
        state = "valid" if r["valid"] else "expired" + (", refreshable" if r["refreshable"] else "")
        ctx.out.line(f"  {r['server']} ({state}, expires {_when(float(r['expires_at']))})")
    return 0


def cmd_token(ctx: Context, args: argparse.Namespace) -> int:
    """Print a valid access token, for scripts (``curl -H "Authorization: Bearer $TOKEN"``)."""
    from e3.client.http import Http, origin_of
    from e3.errors import AuthError

    http = Http(origin_of(args.server), ctx.settings)
    try:
        cred = http.credential()
    finally:
        http.close()
    if cred is None:
        raise AuthError(f"not logged in to {http.origin} (run `e3 login {http.origin}`)")
    ctx.out.data({"server": http.origin, "access_token": cred.access_token})
    ctx.out.line(cred.access_token)
    return 0


def cmd_whoami(ctx: Context, args: argparse.Namespace) -> int:
    """Decode the stored token's identity claims."""
    from e3.client.credentials import token_claims
    from e3.client.http import origin_of
    from e3.errors import AuthError, UsageError

    creds = _store(ctx).all()
    if args.server:
        origin = origin_of(args.server)
    elif len(creds) == 1:
        (origin,) = creds
    elif not creds:
        raise AuthError("not logged in to any server")
    else:
        raise UsageError("logged in to several servers: name one (e3 auth whoami <server>)")
    cred = creds.get(origin)
    if cred is None:
        raise AuthError(f"not logged in to {origin}")
    claims = token_claims(cred.access_token)
    info = {
        "server": origin,
        "subject": claims.get("sub"),
        "email": claims.get("email"),
        "issuer": claims.get("iss"),
    }
    ctx.out.data(info)
    ctx.out.line(f"Server:  {origin}")
    ctx.out.line(f"Subject: {info['subject'] or '-'}")
    ctx.out.line(f"Email:   {info['email'] or '-'}")
    ctx.out.line(f"Issuer:  {info['issuer'] or '-'}")
    return 0
