"""``e3-api-server`` (and ``e3 serve``): serve repositories over HTTP with uvicorn."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
from typing import TYPE_CHECKING, TextIO

from e3.errors import E3Error, UsageError
from e3.model.runs import start_options
from e3.server.options import add_options

if TYPE_CHECKING:
    from e3.server.auth import Provider, TokenValidator


def parser() -> argparse.ArgumentParser:
    """Options of ``e3-api-server``."""
    p = argparse.ArgumentParser(
        prog="e3-api-server", description="Serve e3 repositories over HTTP."
    )
    add_options(p)
    return p


def run_server(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    """Bind, print the URL, and serve until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:
        raise UsageError(
            "the API server needs the server extra: pip install 'e3-engine[server]'"
        ) from exc

    from e3.base.config import load_settings
    from e3.server.app import ServerConfig, create_app
    from e3.server.repos import Repositories

    if (args.auth_key or args.auth_jwks) and not (args.auth_issuer and args.auth_audience):
        raise UsageError("--auth-key/--auth-jwks need --auth-issuer and --auth-audience")
    if args.oidc and (args.auth_key or args.auth_jwks):
        raise UsageError("choose --oidc or an external key, not both")
    settings = load_settings()
    sock, listen_url = _listen(args.host, args.port)
    base_url = (args.url or listen_url).rstrip("/")
    repos = Repositories(
        root=args.repos.resolve() if args.repos else None,
        single=args.repo.resolve() if args.repo else None,
        durable=settings.durable,
    )
    if args.repo is not None:
        repos.open("default")  # fail now, clearly, if it is not a repository
    if args.repos is not None and not args.repos.is_dir():
        raise UsageError(f"--repos {args.repos}: not a directory")
    provider, validator = _authentication(args, base_url)
    cluster = args.cluster or settings.cluster
    if cluster is not None:
        start_options(cluster=cluster)  # a malformed address is refused before serving
    app = create_app(
        ServerConfig(
            repos,
            base_url,
            cors=args.cors,
            provider=provider,
            validator=validator,
            cluster=cluster,
        )
    )
    out = stdout or sys.stdout
    print(f"e3 API server listening on {listen_url}", file=out, flush=True)
    if base_url != listen_url:
        print(f"  public URL: {base_url}", file=out, flush=True)
    if (
        provider is not None
        and not provider.auto_approve
        and "E3_AUTH_APPROVAL_SECRET" not in os.environ
    ):
        print(f"  login approval secret: {provider.approval_secret}", file=out, flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _listen(host: str, port: int) -> tuple[socket.socket, str]:
    """A listening socket (connections queue from now on) and its URL."""
    # IPPROTO_TCP explicitly: asyncio turns Nagle's algorithm off only on sockets that say
    # so, and with it on every keep-alive request waits ~40 ms for a delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    shown = f"[{host}]" if ":" in host else host
    return sock, f"http://{shown}:{sock.getsockname()[1]}"


def _authentication(
    args: argparse.Namespace, base_url: str
) -> tuple[Provider | None, TokenValidator | None]:
    """The built-in login provider, or a validator of an external one's tokens, or neither."""
    from e3.base.units import parse_duration
    from e3.server.auth import Provider, TokenValidator, load_public_key

    if args.oidc:
        provider = Provider(
            base_url,
            access_ttl=parse_duration(args.token_expiry, bare="s"),
            refresh_ttl=parse_duration(args.refresh_token_expiry, bare="s"),
            auto_approve=os.environ.get("E3_AUTH_AUTO_APPROVE") == "1",
            approval_secret=os.environ.get("E3_AUTH_APPROVAL_SECRET") or secrets.token_urlsafe(12),
        )
        return provider, provider.validator()
    if not (args.auth_key or args.auth_jwks):
        return None, None
    key = None
    if args.auth_key:
        try:
            key = load_public_key(args.auth_key.read_bytes())
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"--auth-key {args.auth_key}: not a readable PEM public key") from exc
    return None, TokenValidator(
        issuer=args.auth_issuer, audience=args.auth_audience, key=key, jwks_url=args.auth_jwks
    )


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = parser().parse_args(argv)
    try:
        return run_server(args)
    except E3Error as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return exc.spec.exit_code
    except KeyboardInterrupt:
        return 0


def entry() -> None:
    """``e3-api-server``."""
    sys.exit(main())
