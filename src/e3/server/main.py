"""``e3-api-server`` (and ``e3 serve``): serve repositories over HTTP with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from e3.errors import E3Error, UsageError
from e3.model.runs import start_options
from e3.server.options import add_options

if TYPE_CHECKING:
    import uvicorn

    from e3.server.auth import Provider, TokenValidator
    from e3.server.connections import ConnectionGuard
    from e3.server.policy import Policy


#: Connections asyncio accepts per event loop iteration. Several batches are accepted
#: before the first reaches the connection guard, so this is kept small next to the
#: descriptors the guard keeps in reserve (limits.FD_RESERVE).
ACCEPT_BATCH = 16
#: Connections the kernel queues until they are accepted.
LISTEN_QUEUE = 1024


def parser() -> argparse.ArgumentParser:
    """Options of ``e3-api-server``."""
    p = argparse.ArgumentParser(
        prog="e3-api-server", description="Serve e3 repositories over HTTP."
    )
    add_options(p)
    return p


def run_server(
    args: argparse.Namespace,
    *,
    stdout: TextIO | None = None,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Bind, print the URL (or pass it to ``announce``), and serve until interrupted."""
    try:
        import uvicorn  # noqa: F401 - present, or the server extra is missing
    except ImportError as exc:
        raise UsageError(
            "the API server needs the server extra: pip install 'e3-engine[server]'"
        ) from exc

    from e3.base.config import load_settings
    from e3.server.app import ServerConfig, create_app
    from e3.server.connections import ConnectionGuard, OncePerInterval
    from e3.server.limits import connection_cap, limits_from_args
    from e3.server.repos import Repositories

    if (args.auth_key or args.auth_jwks) and not (args.auth_issuer and args.auth_audience):
        raise UsageError("--auth-key/--auth-jwks need --auth-issuer and --auth-audience")
    if args.oidc and (args.auth_key or args.auth_jwks):
        raise UsageError("choose --oidc or an external key, not both")
    limits = limits_from_args(args)
    cap = connection_cap(limits)
    settings = load_settings()
    sock, listen_url = _listen(args.host, args.port)
    base_url = (args.url or listen_url).rstrip("/")
    provider, validator = _authentication(args, base_url)
    repos = Repositories(
        root=args.repos.resolve() if args.repos else None,
        single=args.repo.resolve() if args.repo else None,
        durable=settings.durable,
    )
    if args.repo is not None:
        repos.open("default")  # fail now, clearly, if it is not a repository
    if args.repos is not None and not args.repos.is_dir():
        raise UsageError(f"--repos {args.repos}: not a directory")
    log_filter = OncePerInterval()
    guard = ConnectionGuard(
        cap,
        header_timeout=limits.header_timeout,
        body_timeout=limits.body_timeout,
        log_filter=log_filter,
    )
    policy, policy_note = _policy(args, validator)
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
            limits=limits,
            policy=policy,
            connections=guard,
            cluster=cluster,
        )
    )
    out = stdout or sys.stdout
    if announce is not None:
        announce(base_url)
    else:
        print(f"e3 API server listening on {listen_url}", file=out, flush=True)
        print(f"  web view: {base_url}/ui/", file=out, flush=True)
    notes = [f"public URL: {base_url}"] if base_url != listen_url else []
    notes += [policy_note, limits.describe(cap)]
    secret_needed = provider is not None and not provider.auto_approve
    if secret_needed and provider and "E3_AUTH_APPROVAL_SECRET" not in os.environ:
        notes.append(f"login approval secret: {provider.approval_secret}")
    for note in notes:
        print(f"  {note}", file=out, flush=True)
    _serve(app, sock, guard, limits.keep_alive, log_filter)
    return 0


def _serve(
    app: object,
    sock: socket.socket,
    guard: ConnectionGuard,
    keep_alive: float,
    log_filter: logging.Filter,
) -> None:
    """Serve ``app`` on ``sock`` with uvicorn until interrupted."""
    import uvicorn

    from e3.server.connections import guarded_protocol

    # Open event streams of the web view end with the server, not the other way round.
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level="warning",
        lifespan="on",
        access_log=False,
        http=guarded_protocol(guard),
        timeout_keep_alive=max(1, round(keep_alive)),
        backlog=ACCEPT_BATCH,  # asyncio's accept batch (and listen() again: see _Server)
        timeout_graceful_shutdown=2,
    )
    _quiet_logs(log_filter)
    _server_class(uvicorn.Server)(config).run(sockets=[sock])


def _server_class(base: type[uvicorn.Server]) -> type[uvicorn.Server]:
    """The uvicorn server, keeping the kernel's listen queue long after asyncio shortened it.

    asyncio uses one number for the listen queue and for how many connections it
    accepts per loop iteration; the first must be long (a burst of clients waits
    there instead of being dropped), the second short (see :data:`ACCEPT_BATCH`).
    """

    class Server(base):  # type: ignore[valid-type, misc]
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            for s in sockets or []:
                s.listen(LISTEN_QUEUE)

    return Server


def _listen(host: str, port: int) -> tuple[socket.socket, str]:
    """A listening socket, and its URL."""
    # IPPROTO_TCP explicitly: asyncio turns Nagle's algorithm off only on sockets that say
    # so, and with it on every keep-alive request waits ~40 ms for a delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(LISTEN_QUEUE)  # connections queue from now on, before uvicorn accepts them
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    shown = f"[{host}]" if ":" in host else host
    return sock, f"http://{shown}:{sock.getsockname()[1]}"


def _authentication(
    args: argparse.Namespace, base_url: str
) -> tuple[Provider | None, TokenValidator | None]:
    """The built-in provider (``--oidc``, issuer ``base_url``) and the token validator, if any."""
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
    validator = TokenValidator(
        issuer=args.auth_issuer, audience=args.auth_audience, key=key, jwks_url=args.auth_jwks
    )
    return None, validator


def _policy(args: argparse.Namespace, validator: TokenValidator | None) -> tuple[Policy, str]:
    """The authorization policy, and the start-up line saying which one is in force."""
    from e3.server.policy import Policy, load_policy

    authenticated = validator is not None or args.oidc
    if args.policy is None:
        if authenticated:
            return Policy.everyone_admin(), (
                "authorization: no --policy given: every authenticated caller is admin "
                "of every repository"
            )
        return Policy.everyone_admin(), "authorization: none (no login required: anyone is admin)"
    if not authenticated:
        raise UsageError("--policy needs authentication (--oidc, --auth-key or --auth-jwks)")
    policy = load_policy(args.policy)
    return policy, f"authorization: policy {args.policy} ({policy.summary()})"


def _quiet_logs(log_filter: logging.Filter) -> None:
    """Repeated log lines (one per refused connection, per bad request…) once per interval."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:  %(message)s"))
    ours = logging.getLogger("e3.server")
    ours.addHandler(handler)
    ours.propagate = False
    for name in ("e3.server", "uvicorn.error", "asyncio"):
        logging.getLogger(name).addFilter(log_filter)


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
