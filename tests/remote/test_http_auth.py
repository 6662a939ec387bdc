"""Authentication over HTTP, against real ``e3-api-server`` processes on 127.0.0.1.

Authenticated servers are started once per module:

* ``external``: tokens of an outside identity provider, checked against an RS256 public
  key made here (``--auth-key``); the tests mint every kind of bad token themselves;
* ``oidc``: the server is its own OIDC provider, device logins approved at once
  (``E3_AUTH_AUTO_APPROVE=1``), driven through ``e3 login`` and the other CLI commands;
* ``oidc_short``: the same with two-second access tokens, for refresh after expiry;
* ``jwks``: trusts ``oidc``'s provider as an external one, through ``--auth-jwks``.

The protected routes are not listed here: they are read from the server's own OpenAPI
document (every operation with ``security``), plus ``HEAD`` wherever ``GET`` is served,
and every bad credential is sent to every one of them, with path parameters naming real
things (a repository with a deployed, already run package, finished jobs, a pending
upload) and well-formed bodies, so a route that skipped authentication would act, and
the repository is compared byte for byte afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from e3.codec import beast2
from e3.errors import AuthError, E3Error
from e3.model import wire
from e3.model.bodies import (
    DeployRequest,
    ImportRequest,
    JobStarted,
    JobStatus,
    UploadRequest,
    UploadTicket,
    WorkspaceExportRequest,
    WorkspaceRequest,
)
from e3.model.retention import GcPolicy
from e3.model.runs import StartOptions
from tests_support import (
    Served,
    ServerProcess,
    export_to,
    run_cli,
    start_server,
    tree_digest,
    versioned_hello,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

ISSUER = "https://issuer.test"
AUDIENCE = "e3-tests"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Repositories seeded on disk before each server starts: one the bad credentials are
#: swept over (it must not change), one the valid credential is swept over (it may).
SWEPT, VALID = "swept", "valid"
#: What ``PUT /api/repos/{repo}`` is asked to create (it must never appear for a bad token).
INTRUDER_REPO = "intruder"


# ── small helpers ───────────────────────────────────────────────────────────


def ok(*args: str | os.PathLike[str]) -> str:
    """Run an e3 command that must succeed; its stdout."""
    r = run_cli(*args)
    assert r.code == 0, f"e3 {' '.join(map(str, args))} -> {r.code}: {r.err}"
    return r.out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def credentials_path() -> Path:
    """Where the CLI keeps logins in this test (the autouse fixture gives a fresh E3_HOME)."""
    override = os.environ.get("E3_CREDENTIALS_PATH")
    return Path(override) if override else Path(os.environ["E3_HOME"]) / "credentials.json"


def stored_logins() -> dict[str, Any]:
    return json.loads(credentials_path().read_text())["credentials"]


def store_login(origin: str, access: str, refresh: str, expires_at: str) -> None:
    """Overwrite one stored login (the file format of the reference)."""
    data = json.loads(credentials_path().read_text())
    data["credentials"][origin] = {
        "accessToken": access,
        "refreshToken": refresh,
        "expiresAt": expires_at,
    }
    credentials_path().write_text(json.dumps(data))


def login(server: ServerProcess) -> dict[str, Any]:
    """``e3 login`` (auto-approved); the stored credential."""
    r = run_cli("login", server.url, "--no-browser")
    assert r.code == 0, r.err
    assert "Successfully logged in as: dev-user" in r.out
    return stored_logins()[server.url]


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade_jwt(
    header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """A JWT assembled by hand (for algorithms PyJWT rightly refuses to produce)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def tampered(token: str, **changes: Any) -> str:
    """``token`` with claims changed and the original signature kept."""
    header, _, signature = token.split(".")
    payload = b64url(json.dumps({**claims_of(token), **changes}).encode())
    return f"{header}.{payload}.{signature}"


def beast2_body(value: Any, py_type: Any) -> dict[str, Any]:
    """``httpx`` arguments for a typed request body."""
    return {
        "content": beast2.encode(wire.to_east(value, py_type), wire.east_type_of(py_type)),
        "headers": {"Content-Type": wire.BEAST2},
    }


def typed(resp: httpx.Response, py_type: Any) -> Any:
    assert resp.status_code < 300, (resp.status_code, resp.content[:300])
    return wire.decode_reply(resp.content, py_type)


def bearer_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def device_tokens(url: str) -> dict[str, Any]:
    """A raw device-flow login (the provider approves at once): the token response."""
    start = httpx.post(f"{url}/oauth2/device_authorization", data={"client_id": "e3-cli"})
    assert start.status_code == 200, start.text
    r = httpx.post(
        f"{url}/oauth2/token",
        data={
            "grant_type": DEVICE_GRANT,
            "device_code": start.json()["device_code"],
            "client_id": "e3-cli",
        },
    )
    assert r.status_code == 200, r.text
    return r.json()


def refresh_grant(url: str, refresh_token: str) -> httpx.Response:
    return httpx.post(
        f"{url}/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "e3-cli"},
    )


@contextlib.contextmanager
def clean_env(home: Path) -> Iterator[None]:
    """Module fixtures run before the per-test isolation: give them their own."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("E3_"):
                mp.delenv(key)
        mp.setenv("E3_HOME", str(home))
        yield


def seed_repository(path: Path, scratch: Path) -> None:
    """hello@1.0.0 deployed to workspace ``w`` and run once (executions and logs exist)."""
    zip_path = export_to(versioned_hello("1.0.0"), scratch)
    ok("repo", "create", path)
    ok("package", "import", path, zip_path)
    ok("workspace", "deploy", path, "w", "hello@1.0.0")
    ok("start", path, "w")


# ── the routes, as the server describes them ────────────────────────────────


@dataclass(frozen=True)
class Endpoint:
    """One protected operation: a method on an OpenAPI path template."""

    method: str
    template: str

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def protected_endpoints(url: str) -> list[Endpoint]:
    """Every operation the OpenAPI document marks with ``security`` (and HEAD beside GET)."""
    doc = httpx.get(f"{url}/api/openapi.json").json()
    found = [
        Endpoint(method.upper(), template)
        for template, operations in doc["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    ]
    # Starlette answers HEAD wherever GET is routed: those are endpoints too.
    found += [Endpoint("HEAD", e.template) for e in found if e.method == "GET"]
    # Guard against a vacuous pass (an empty or truncated document).
    assert len(found) > 40, f"only {len(found)} protected endpoints listed: {found}"
    return found


_PARAM = re.compile(r"\{(\w+)\}")


def url_of(endpoint: Endpoint, params: dict[str, str]) -> str:
    """The endpoint's path with every parameter filled from ``params``.

    ``{id}`` takes the value named by the segment before it (``gc``, ``import``,
    ``export``; a made-up id for others); ``PUT /api/repos/{repo}`` takes ``new_repo``;
    the POST routes on ``{spec}``/``{path}`` take the ``/export`` and ``/upload`` tails
    they expect.
    """
    segments = endpoint.template.split("/")
    out = []
    for i, segment in enumerate(segments):
        m = _PARAM.fullmatch(segment)
        if m is None:
            out.append(segment)
            continue
        name = m.group(1)
        if name == "id":
            name = segments[i - 1]
        if (endpoint.method, endpoint.template) == ("PUT", "/api/repos/{repo}"):
            name = "new_repo"
        # A parameter of a route added later still gets a value: the route is swept anyway.
        out.append(params.get(name, "0123456789abcdef"))
    path = "/".join(out)
    if endpoint.method == "POST" and endpoint.template.endswith("{spec}"):
        path += "/export"
    elif endpoint.method == "POST" and endpoint.template.endswith("{path}"):
        path += "/upload"
    return path


#: Well-formed bodies, so a route that skipped authentication would really act.
_WS = "/api/repos/{repo}/workspaces/{ws}"
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    # A dry run: the valid sweep must not race a real collection against its own writes.
    ("POST", "/api/repos/{repo}/gc"): beast2_body(GcPolicy(dry_run=True), GcPolicy),
    ("POST", "/api/repos/{repo}/import"): beast2_body(ImportRequest(1024), ImportRequest),
    ("POST", "/api/repos/{repo}/workspaces"): beast2_body(
        WorkspaceRequest("intruder"), WorkspaceRequest
    ),
    ("POST", f"{_WS}/deploy"): beast2_body(DeployRequest("hello@1.0.0"), DeployRequest),
    ("POST", f"{_WS}/export"): beast2_body(WorkspaceExportRequest(), WorkspaceExportRequest),
    ("PUT", f"{_WS}/datasets/{{path}}"): beast2_body(42, int),  # a new value for inputs.x
    ("POST", f"{_WS}/datasets/{{path}}"): beast2_body(UploadRequest("0" * 64, 1024), UploadRequest),
    ("POST", f"{_WS}/dataflow"): beast2_body(StartOptions(force=True), StartOptions),
}


@dataclass(frozen=True)
class Presented:
    """How a request presents (or fails to present) a credential."""

    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    #: The credential itself: an error reply must never echo it.
    secret: str = ""


def bearer(token: str) -> Presented:
    return Presented(bearer_headers(token), secret=token)


def send(
    client: httpx.Client, endpoint: Endpoint, params: dict[str, str], presented: Presented
) -> httpx.Response:
    body = BODIES.get((endpoint.method, endpoint.template), {})
    return client.request(
        endpoint.method,
        url_of(endpoint, params),
        content=body.get("content"),
        headers={**body.get("headers", {}), **presented.headers},
        params=presented.params,
    )


def refusal_problem(endpoint: Endpoint, resp: httpx.Response, presented: Presented) -> str | None:
    """What is wrong with the reply to a bad credential (None: a proper 401)."""
    if resp.status_code != 401:
        return f"HTTP {resp.status_code} {resp.content[:120]!r}"
    if not resp.headers.get("www-authenticate", "").startswith("Bearer"):
        return "401 without WWW-Authenticate: Bearer"
    if endpoint.method == "HEAD":
        return None  # no body to look at
    if resp.headers.get("content-type", "").startswith("application/json"):
        error = resp.json().get("error", {})  # the web view's routes answer in JSON
        if error.get("code") != "unauthorized":
            return f"401 carrying {error!r}"
        if len(presented.secret) > 8 and presented.secret in str(error.get("message")):
            return f"the error echoes the credential: {error}"
        return None
    try:
        wire.decode_reply(resp.content, type(None))
    except AuthError as exc:
        if len(presented.secret) > 8 and presented.secret in exc.message:
            return f"the error echoes the credential: {exc.message}"
        return None
    except E3Error as exc:
        return f"401 carrying a {exc.spec.code} error"
    return "401 with a success envelope"


def sweep_refusals(
    url: str, endpoints: list[Endpoint], params: dict[str, str], presented: Presented
) -> list[str]:
    """Send ``presented`` to every endpoint; every way a reply was not a proper refusal."""
    failures = []
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for endpoint in endpoints:
            problem = refusal_problem(
                endpoint, send(client, endpoint, params, presented), presented
            )
            if problem is not None:
                failures.append(f"{endpoint}: {problem}")
    return failures


def live_params(url: str, token: str, repo: str, spare_zip: Path) -> dict[str, str]:
    """Path parameter values naming things that exist in ``repo`` on the server."""
    base = f"/api/repos/{repo}"
    with httpx.Client(base_url=url, headers=bearer_headers(token), timeout=30.0) as client:
        value = client.get(f"{base}/workspaces/w/datasets/inputs/x")
        assert value.status_code == 200, value.content
        gc = typed(client.post(f"{base}/gc", **beast2_body(GcPolicy(True), GcPolicy)), JobStarted)
        export = typed(client.post(f"{base}/packages/hello/1.0.0/export"), JobStarted)
        for kind, job in (("gc", gc), ("export", export)):  # finished: nothing left running
            status = typed(client.get(f"{base}/{kind}/{job.id}", params={"wait": "20"}), JobStatus)
            assert status.state == "succeeded", status
        # An uploaded, not yet imported package (hello@2.0.0): importing it would change the
        # repository.
        size = spare_zip.stat().st_size
        ticket = typed(
            client.post(f"{base}/import", **beast2_body(ImportRequest(size), ImportRequest)),
            UploadTicket,
        )
        assert client.put(ticket.upload_url, content=spare_zip.read_bytes()).status_code == 200
    return {
        "repo": repo,
        "new_repo": f"{INTRUDER_REPO}-{repo}",
        "ws": "w",
        "task": "double",
        "spec": "hello/1.0.0",
        "path": "inputs/x",
        "hash": value.headers["x-content-sha256"],
        "gc": gc.id,
        "export": export.id,
        "import": ticket.id,
    }


@dataclass
class Setup:
    """A running authenticated server, its repositories and what the sweeps need."""

    server: ServerProcess
    root: Path
    endpoints: list[Endpoint]
    #: Path parameters naming things in the SWEPT and VALID repositories.
    swept: dict[str, str]
    valid: dict[str, str]
    #: External server: the provider's signing key; OIDC server: a device login's tokens.
    key: rsa.RSAPrivateKey | None = None
    tokens: dict[str, Any] = field(default_factory=dict)

    def token(self, *, key: Any = None, algorithm: str = "RS256", **changes: Any) -> str:
        """An external-provider token: valid unless ``changes`` say otherwise (None drops)."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "email": "alice@issuer.test",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        }
        claims.update(changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key or self.key, algorithm)


def start_setup(
    base: Path,
    *server_args: str | os.PathLike[str],
    repos: tuple[str, ...] = (SWEPT,),
    env: dict[str, str] | None = None,
) -> tuple[ServerProcess, Path]:
    """Seed ``repos`` on disk, then start a server on them."""
    root = base / "repos"
    root.mkdir()
    with clean_env(base / "home"):
        for name in repos:
            seed_repository(root / name, base)
    server = start_server("--repos", root, *server_args, log=base / "server.log", env=env)
    return server, root


# ── servers ─────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def external(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A server accepting RS256 tokens of an outside provider (a key pair made here)."""
    base = tmp_path_factory.mktemp("external")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = base / "provider.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    args = ("--auth-key", pem, "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE)
    server, root = start_setup(base, *args, repos=(SWEPT, VALID))
    try:
        setup = Setup(server, root, protected_endpoints(server.url), {}, {}, key=key)
        spare = export_to(versioned_hello("2.0.0"), base)
        setup.swept = live_params(server.url, setup.token(), SWEPT, spare)
        setup.valid = live_params(server.url, setup.token(), VALID, spare)
        yield setup
    finally:
        server.stop()


def _oidc(tmp_path_factory: pytest.TempPathFactory, *args: str) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("oidc")
    server, root = start_setup(base, "--oidc", *args, env={"E3_AUTH_AUTO_APPROVE": "1"})
    try:
        tokens = device_tokens(server.url)
        setup = Setup(server, root, protected_endpoints(server.url), {}, {}, tokens=tokens)
        spare = export_to(versioned_hello("2.0.0"), base)
        setup.swept = live_params(server.url, tokens["access_token"], SWEPT, spare)
        yield setup
    finally:
        server.stop()


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A server that is its own OIDC provider, approving device logins at once."""
    yield from _oidc(tmp_path_factory)


@pytest.fixture(scope="module")
def oidc_short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The same with access tokens that expire after two seconds."""
    yield from _oidc(tmp_path_factory, "--token-expiry", "2s")


@pytest.fixture(scope="module")
def jwks(tmp_path_factory: pytest.TempPathFactory, oidc: Setup) -> Iterator[Setup]:
    """A server trusting ``oidc``'s provider as an external one, through its JWKS URL."""
    base = tmp_path_factory.mktemp("jwks")
    url = oidc.server.url
    args = ("--auth-jwks", f"{url}/.well-known/jwks.json")
    server, root = start_setup(base, *args, "--auth-issuer", url, "--auth-audience", url)
    try:
        setup = Setup(server, root, protected_endpoints(server.url), {}, {}, tokens=oidc.tokens)
        spare = export_to(versioned_hello("2.0.0"), base)
        setup.swept = live_params(server.url, oidc.tokens["access_token"], SWEPT, spare)
        yield setup
    finally:
        server.stop()


# ── every bad credential on every protected route ───────────────────────────


def _other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(s: Setup) -> bytes:
    assert s.key is not None
    return s.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _unsigned(s: Setup) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 600}
    return handmade_jwt({"alg": "none", "typ": "JWT"}, claims, lambda _: b"")


def _hs256_with_public_key(s: Setup) -> str:
    """The algorithm-confusion attack: HMAC keyed with the (public) verification key."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 600}
    secret = _public_pem(s)
    return handmade_jwt(
        {"alg": "HS256", "typ": "JWT"},
        claims,
        lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )


def _valid_elsewhere(s: Setup, where: str) -> Presented:
    """A valid token where none is looked for: another scheme, or the query string."""
    token = s.token()
    if where == "scheme":
        return Presented({"Authorization": f"Token {token}"}, secret=token)
    return Presented(params={"access_token": token}, secret=token)


BAD_CREDENTIALS: dict[str, Callable[[Setup], Presented]] = {
    "missing": lambda s: Presented(),
    "scheme-only": lambda s: Presented({"Authorization": "Bearer"}),
    "basic-scheme": lambda s: Presented(
        {"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()}
    ),
    "valid-token-other-scheme": lambda s: _valid_elsewhere(s, "scheme"),
    "valid-token-in-query": lambda s: _valid_elsewhere(s, "query"),
    "garbage": lambda s: bearer("not-a-jwt"),
    "malformed-jwt": lambda s: bearer("aaaa.bbbb.cccc"),
    "truncated": lambda s: bearer(s.token()[:-20]),
    "signature-stripped": lambda s: bearer(s.token().rsplit(".", 1)[0] + "."),
    "tampered-claims": lambda s: bearer(tampered(s.token(), sub="root")),
    "expired": lambda s: bearer(s.token(exp=int(time.time()) - 60)),
    "not-yet-valid": lambda s: bearer(s.token(nbf=int(time.time()) + 600)),
    "wrong-issuer": lambda s: bearer(s.token(iss="https://evil.test")),
    "wrong-audience": lambda s: bearer(s.token(aud="another-service")),
    "wrong-key": lambda s: bearer(s.token(key=_other_key())),
    "refresh-as-access": lambda s: bearer(s.token(token_type="refresh")),
    "missing-sub": lambda s: bearer(s.token(sub=None)),
    "missing-exp": lambda s: bearer(s.token(exp=None)),
    "missing-iss": lambda s: bearer(s.token(iss=None)),
    "missing-aud": lambda s: bearer(s.token(aud=None)),
    "alg-none": lambda s: bearer(_unsigned(s)),
    "hs256-public-key": lambda s: bearer(_hs256_with_public_key(s)),
    "rs512": lambda s: bearer(s.token(algorithm="RS512")),
}


@pytest.mark.parametrize("kind", list(BAD_CREDENTIALS))
def test_bad_credentials_are_refused_on_every_protected_route(external: Setup, kind: str) -> None:
    presented = BAD_CREDENTIALS[kind](external)
    before = tree_digest(external.root / SWEPT)
    failures = sweep_refusals(external.server.url, external.endpoints, external.swept, presented)
    assert not failures, (
        f"{kind}: {len(failures)} of {len(external.endpoints)} endpoints did not refuse:\n"
        + "\n".join(failures)
    )
    assert tree_digest(external.root / SWEPT) == before
    assert not (external.root / external.swept["new_repo"]).exists()
    assert external.server.alive()


def test_a_valid_token_reaches_every_protected_route(external: Setup) -> None:
    """Any answer but 401 (or a server error, or a miss of the route itself) is fine."""
    # Reads first, then writes, deletions last, so most handlers find something to act on.
    order = {"GET": 0, "HEAD": 0, "PUT": 1, "POST": 1, "DELETE": 2}
    endpoints = sorted(external.endpoints, key=lambda e: order[e.method])
    presented = bearer(external.token())
    failures = []
    with httpx.Client(base_url=external.server.url, timeout=30.0) as client:
        for endpoint in endpoints:
            resp = send(client, endpoint, external.valid, presented)
            if resp.status_code == 401 or resp.status_code >= 500:
                failures.append(f"{endpoint}: HTTP {resp.status_code} {resp.content[:200]!r}")
            elif resp.status_code in (404, 405) and endpoint.method != "HEAD":
                try:
                    wire.decode_reply(resp.content, type(None))
                except E3Error as exc:
                    if exc.message.startswith("no API endpoint") or "not offered" in exc.message:
                        failures.append(f"{endpoint}: the URL missed the route: {exc.message}")
    assert not failures, "\n".join(failures)


def test_bearer_scheme_is_case_insensitive_and_public_routes_stay_public(external: Setup) -> None:
    url = external.server.url
    token = external.token()
    for scheme in ("Bearer", "bearer", "BEARER"):
        r = httpx.get(f"{url}/api/repos", headers={"Authorization": f"{scheme} {token}"})
        assert r.status_code == 200, (scheme, r.content)
        assert SWEPT in wire.decode_reply(r.content, list[str])
    # The OpenAPI document and the transfers (whose unguessable ids are the credential) need
    # no token, and a bad one does not make them refuse.
    for headers in ({}, bearer_headers("not-a-jwt")):
        doc = httpx.get(f"{url}/api/openapi.json", headers=headers)
        assert doc.status_code == 200 and doc.json()["openapi"].startswith("3.")
        assert (
            httpx.put(f"{url}/api/uploads/nope", content=b"x", headers=headers).status_code == 404
        )
        assert httpx.get(f"{url}/api/downloads/nope", headers=headers).status_code == 404
    # The transfers are the only operations the document lists without ``security``.
    documented = httpx.get(f"{url}/api/openapi.json").json()["paths"]
    public = sorted(
        f"{m.upper()} {p}"
        for p, ops in documented.items()
        for m, op in ops.items()
        if not op.get("security")
    )
    assert public == ["GET /api/downloads/{id}", "PUT /api/uploads/{id}"]


# The built-in provider's own tokens, misused: on the provider's server, and on a server
# that trusts that provider through its JWKS URL.
PROVIDER_BAD_CREDENTIALS = ["missing", "provider-refresh-token", "other-provider-access-token"]


@pytest.mark.parametrize("kind", PROVIDER_BAD_CREDENTIALS)
@pytest.mark.parametrize("which", ["oidc", "jwks"])
def test_provider_tokens_misused_are_refused_on_every_protected_route(
    request: pytest.FixtureRequest, oidc_short: Setup, which: str, kind: str
) -> None:
    setup: Setup = request.getfixturevalue(which)
    presented = {
        "missing": Presented(),
        "provider-refresh-token": bearer(setup.tokens["refresh_token"]),
        # Signed by another provider (its key, kid and issuer differ): an attacker's own.
        # (It has expired by now too; the signature is checked first all the same.)
        "other-provider-access-token": bearer(oidc_short.tokens["access_token"]),
    }[kind]
    before = tree_digest(setup.root / SWEPT)
    failures = sweep_refusals(setup.server.url, setup.endpoints, setup.swept, presented)
    assert not failures, f"{kind}:\n" + "\n".join(failures)
    assert tree_digest(setup.root / SWEPT) == before
    # The provider's access token is accepted (the refusals above are not blanket ones).
    good = bearer_headers(setup.tokens["access_token"])
    assert httpx.get(f"{setup.server.url}/api/repos", headers=good).status_code == 200


# ── the CLI against the built-in provider ───────────────────────────────────


def test_login_stores_a_private_credential_and_commands_then_work(
    oidc: Setup, tmp_path: Path
) -> None:
    url = oidc.server.url
    entry = login(oidc.server)
    path = credentials_path()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700  # E3_HOME existed with default permissions
    data = json.loads(path.read_text())
    assert data["version"] == 1 and list(data["credentials"]) == [url]
    assert set(entry) == {"accessToken", "refreshToken", "expiresAt"}
    expires = datetime.fromisoformat(entry["expiresAt"]).timestamp()
    assert 3500 < expires - time.time() <= 3600
    claims = claims_of(entry["accessToken"])
    assert (claims["sub"], claims["iss"], claims["aud"]) == ("dev-user", url, url)
    assert claims_of(entry["refreshToken"])["token_type"] == "refresh"

    name = f"r{uuid.uuid4().hex[:12]}"
    repo_url = oidc.server.repo_url(name)
    ok("repo", "create", repo_url)
    ok("package", "import", repo_url, export_to(versioned_hello("1.0.0"), tmp_path))
    ok("workspace", "deploy", repo_url, "w", "hello@1.0.0")
    assert ok("get", repo_url, "w.inputs.x") == "10\n"
    assert name in json.loads(ok("repo", "list", url, "--json"))
    assert (oidc.root / name / "workspaces" / "w.beast2").is_file()


def test_commands_without_a_login_fail_with_the_auth_exit_code(oidc: Setup) -> None:
    name = f"r{uuid.uuid4().hex[:12]}"
    commands = [
        ("repo", "list", oidc.server.url),
        ("repo", "create", oidc.server.repo_url(name)),
        ("repo", "status", oidc.server.repo_url(SWEPT)),
        ("get", oidc.server.repo_url(SWEPT), "w.inputs.x"),
        ("workspace", "remove", oidc.server.repo_url(SWEPT), "w"),
    ]
    for args in commands:
        r = run_cli(*args)
        assert r.code == 8, (args, r)
        assert len(r.err_lines) == 1 and r.err_lines[0].startswith("Error: "), (args, r.err)
        assert "e3 login" in r.err, r.err
        assert r.out == ""
    assert not (oidc.root / name).exists()
    assert (oidc.root / SWEPT / "workspaces" / "w.beast2").is_file()
    assert not credentials_path().exists()


def test_auth_status_whoami_token_and_logout(oidc: Setup) -> None:
    url = oidc.server.url
    assert ok("auth", "status") == "No saved logins\n"
    assert run_cli("auth", "whoami").code == 8
    entry = login(oidc.server)

    (row,) = json.loads(ok("auth", "status", "--json"))
    assert (row["server"], row["valid"], row["refreshable"]) == (url, True, True)
    assert f"  {url} (valid, expires " in ok("auth", "status")
    who = json.loads(ok("auth", "whoami", "--json"))
    assert who == {"server": url, "subject": "dev-user", "email": None, "issuer": url}
    assert "Subject: dev-user" in ok("auth", "whoami", url)

    token = ok("auth", "token", url).strip()
    assert token == entry["accessToken"]
    assert json.loads(ok("auth", "token", url, "--json")) == {"server": url, "access_token": token}
    r = httpx.get(f"{url}/api/repos", headers=bearer_headers(token))
    assert r.status_code == 200 and SWEPT in wire.decode_reply(r.content, list[str])

    assert ok("logout", url) == f"Logged out from {url}\n"
    assert stored_logins() == {}
    assert mode(credentials_path()) == 0o600
    for args in (("repo", "list", url), ("auth", "token", url), ("auth", "whoami", url)):
        r = run_cli(*args)
        assert r.code == 8 and r.err_lines[0].startswith("Error: "), (args, r)
    assert ok("logout", url) == f"Not logged in to {url}\n"
    assert ok("auth", "status") == "No saved logins\n"


def test_refresh_tokens_rotate_and_device_codes_are_single_use(oidc: Setup) -> None:
    url = oidc.server.url
    first = device_tokens(url)
    r = refresh_grant(url, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert httpx.get(f"{url}/api/repos", headers=bearer_headers(second["access_token"])).is_success
    # A refresh token works once: the spent one is refused, the rotated one is not.
    again = refresh_grant(url, first["refresh_token"])
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})
    assert refresh_grant(url, second["refresh_token"]).status_code == 200
    # Neither an access token nor garbage is a refresh token.
    for bogus in (first["access_token"], "not-a-jwt", tampered(first["refresh_token"], jti="x")):
        r = refresh_grant(url, bogus)
        assert (r.status_code, r.json()) == (400, {"error": "invalid_grant"}), bogus

    start = httpx.post(f"{url}/oauth2/device_authorization", data={"client_id": "e3-cli"}).json()
    form = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"], "client_id": "e3-cli"}
    assert httpx.post(f"{url}/oauth2/token", data=form).status_code == 200
    reused = httpx.post(f"{url}/oauth2/token", data=form)
    assert (reused.status_code, reused.json()) == (400, {"error": "expired_token"})
    other = httpx.post(f"{url}/oauth2/token", data={"grant_type": "password"})
    assert (other.status_code, other.json()) == (400, {"error": "unsupported_grant_type"})
    # The provider's own endpoints are public.
    assert httpx.get(f"{url}/.well-known/openid-configuration").json()["issuer"] == url
    assert httpx.get(f"{url}/.well-known/jwks.json").json()["keys"][0]["alg"] == "RS256"


def test_an_expired_access_token_is_refreshed(oidc_short: Setup) -> None:
    url = oidc_short.server.url
    entry = login(oidc_short.server)
    old_access, old_refresh = entry["accessToken"], entry["refreshToken"]
    exp = claims_of(old_access)["exp"]
    assert exp - time.time() <= 2
    wait_for(lambda: time.time() > exp + 0.5, "the access token to expire", timeout=10)

    r = httpx.get(f"{url}/api/repos", headers=bearer_headers(old_access))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(AuthError, match="expired"):
        wire.decode_reply(r.content, type(None))
    assert f"{url} (expired, refreshable" in ok("auth", "status")

    # Refreshed before the request (the stored expiry says so).
    assert SWEPT in json.loads(ok("repo", "list", url, "--json"))
    renewed = stored_logins()[url]
    assert renewed["accessToken"] != old_access
    assert renewed["refreshToken"] != old_refresh  # rotated: the old one is spent
    assert refresh_grant(url, old_refresh).status_code == 400

    # Refreshed after a 401: the stored expiry lies (far future) but the token has expired.
    store_login(url, old_access, renewed["refreshToken"], "2999-01-01T00:00:00+00:00")
    assert SWEPT in json.loads(ok("repo", "list", url, "--json"))
    retried = stored_logins()[url]
    assert retried["accessToken"] not in (old_access, renewed["accessToken"])
    assert retried["refreshToken"] != renewed["refreshToken"]


def test_a_refused_access_token_is_refreshed_and_the_request_retried(oidc: Setup) -> None:
    url = oidc.server.url
    entry = login(oidc.server)
    forged = tampered(entry["accessToken"], sub="root")  # signature no longer matches
    store_login(url, forged, entry["refreshToken"], "2999-01-01T00:00:00+00:00")
    assert SWEPT in json.loads(ok("repo", "list", url, "--json"))
    renewed = stored_logins()[url]
    assert renewed["accessToken"] not in (forged, entry["accessToken"])
    assert claims_of(renewed["accessToken"])["sub"] == "dev-user"
    assert mode(credentials_path()) == 0o600

    # When the refresh is refused too (a spent refresh token), the command fails with the
    # auth exit code and the dead login is forgotten.
    store_login(url, forged, entry["refreshToken"], "2999-01-01T00:00:00+00:00")
    r = run_cli("repo", "list", url)
    assert r.code == 8 and len(r.err_lines) == 1, r
    assert r.err_lines[0].startswith("Error: login expired and could not be refreshed")
    assert url not in stored_logins()


def test_credentials_file_is_made_private_wherever_it_is(
    oidc: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E3_CREDENTIALS_PATH moves the file; loose permissions of an existing one are fixed."""
    path = tmp_path / "shared" / "creds.json"
    path.parent.mkdir()
    path.parent.chmod(0o755)
    path.write_text('{"version": 1, "credentials": {}}')
    path.chmod(0o644)
    monkeypatch.setenv("E3_CREDENTIALS_PATH", str(path))
    login(oidc.server)
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
    assert not (Path(os.environ["E3_HOME"]) / "credentials.json").exists()
    assert [p.name for p in path.parent.iterdir()] == ["creds.json"]  # no temporary file left
    assert SWEPT in json.loads(ok("repo", "list", oidc.server.url, "--json"))


def test_a_server_without_authentication_needs_no_login(api_server: Served) -> None:
    url = api_server.server.url
    assert isinstance(json.loads(ok("repo", "list", url, "--json")), list)
    assert not credentials_path().exists()
    r = run_cli("login", url, "--no-browser")
    assert r.code == 8 and "offers no login" in r.err, r
    assert not credentials_path().exists()


def test_an_anonymous_client_cannot_approve_its_own_device_login(tmp_path: Path) -> None:
    """Without auto-approval, approving a login needs the server's approval secret."""
    root = tmp_path / "repos"
    root.mkdir()
    server = start_server(
        "--repos",
        root,
        "--oidc",
        log=tmp_path / "server.log",
        env={"E3_AUTH_APPROVAL_SECRET": "correct horse"},
    )
    try:
        url = server.url
        start = httpx.post(f"{url}/oauth2/device_authorization", data={"client_id": "e3-cli"})
        form = {
            "grant_type": DEVICE_GRANT,
            "device_code": start.json()["device_code"],
            "client_id": "e3-cli",
        }
        pending = httpx.post(f"{url}/oauth2/token", data=form)
        assert pending.json() == {"error": "authorization_pending"}  # no auto-approval here
        user_code = start.json()["user_code"]
        for secret in (None, "", "wrong", "correct horse "):
            data = {"user_code": user_code} | ({} if secret is None else {"secret": secret})
            refused = httpx.post(f"{url}/device/approve", data=data)
            assert refused.status_code == 403, secret
        r = httpx.post(f"{url}/oauth2/token", data=form)
        assert r.status_code == 400 and r.json() == {"error": "authorization_pending"}
        approved = httpx.post(
            f"{url}/device/approve", data={"user_code": user_code, "secret": "correct horse"}
        )
        assert approved.status_code == 200
        tokens = httpx.post(f"{url}/oauth2/token", data=form)
        assert tokens.status_code == 200 and "access_token" in tokens.json()
    finally:
        server.stop()


def test_two_clients_refreshing_one_login_both_keep_working(oidc_short: Setup) -> None:
    """Refresh tokens are single-use: a second client holding the same stale login must pick
    up the login the first one refreshed, not spend the old refresh token and log out."""
    from e3.base.config import load_settings
    from e3.client.credentials import CredentialStore
    from e3.client.http import Http

    url = oidc_short.server.url
    entry = login(oidc_short.server)
    wait_for(
        lambda: time.time() > claims_of(entry["accessToken"])["exp"] + 0.5,
        "the access token to expire",
        timeout=10,
    )
    settings = load_settings()
    first, second = Http(url, settings), Http(url, settings)
    try:
        stale = CredentialStore(settings.credentials_file).get(url)
        assert stale is not None and stale.expired
        a = first._refreshed(stale)
        b = second._refreshed(stale)  # sees the login the first client stored
        assert a.access_token == b.access_token != stale.access_token
        for client in (first, second):
            r = client.check(client.request("GET", "/api/repos"))
            assert SWEPT in wire.decode_reply(r.content, list[str])
    finally:
        first.close()
        second.close()
    # (Each request above refreshed again: a 2 s token is always within the 30 s margin.)
    assert url in stored_logins()
