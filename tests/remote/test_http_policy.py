"""Per-repository permissions (``e3 serve --policy``), every route × every role, on a real server.

The server accepts RS256 tokens of a provider whose key is made here, and reads a policy
granting ``read`` to the subject ``reader``, ``write`` to the group ``writers`` (claim
``groups``), ``admin`` to the scope ``e3:admin`` (claim ``scope``, space-separated), and
``read`` on ``other-*`` only to the subject ``outsider``; ``nobody`` has no grant.

The role each route needs is written out below (:data:`NEEDS`), independently of the
server's own declarations; the test fails if the server documents a protected route the
table does not list. Each caller sends every route:

* with too low a role, to repository ``swept``: the reply must be a 403 permission
  error, and ``swept`` byte-for-byte unchanged afterwards;
* with a sufficient role, to a repository of its own (``own-<role>``, where the request
  may act, destructive routes last): the reply must not be 401 or 403.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from e3.codec import beast2
from e3.errors import PermissionDenied, UsageError
from e3.model import wire
from e3.model.bodies import (
    DeployRequest,
    ImportRequest,
    UploadRequest,
    WorkspaceExportRequest,
    WorkspaceRequest,
)
from e3.model.retention import GcPolicy
from e3.model.runs import StartOptions
from e3.server.auth import Identity
from e3.server.policy import Policy, load_policy
from tests_support import (
    E3_API_SERVER,
    ServerProcess,
    export_to,
    run_cli,
    start_server,
    tree_digest,
    versioned_hello,
)

pytestmark = pytest.mark.timeout(180)

ISSUER = "https://issuer.test"
AUDIENCE = "e3-policy-tests"
RANK = {"none": -1, "read": 0, "write": 1, "admin": 2}
POLICY = """
[claims]
subject = "sub"
groups = ["groups", "scope"]

[[grant]]
role = "read"
subjects = ["reader"]

[[grant]]
role = "write"
groups = ["writers"]

[[grant]]
role = "admin"
groups = ["e3:admin"]

[[grant]]
role = "read"
subjects = ["outsider"]
repos = ["other-*"]
"""
#: The claims of each caller's token.
CALLERS: dict[str, dict[str, Any]] = {
    "none": {"sub": "nobody"},
    "read": {"sub": "reader"},
    "write": {"sub": "wendy", "groups": ["staff", "writers"]},
    "admin": {"sub": "ada", "scope": "openid e3:admin"},
}
#: Reads repositories named other-* and nothing else.
OUTSIDER = {"sub": "outsider"}
_WS = "/api/repos/{repo}/workspaces/{ws}"
_RUN = "/api/repos/{repo}/runs/{run}"
_UI_WS = "/ui/api/repos/{repo}/workspaces/{ws}"
#: The role each protected route needs (written here, not read from the server).
NEEDS: dict[tuple[str, str], str] = {
    ("PUT", "/api/repos/{repo}"): "admin",
    ("DELETE", "/api/repos/{repo}"): "admin",
    ("GET", "/api/repos/{repo}/status"): "read",
    ("POST", "/api/repos/{repo}/gc"): "admin",
    ("GET", "/api/repos/{repo}/gc/{id}"): "admin",
    ("POST", "/api/repos/{repo}/verify"): "admin",
    ("GET", "/api/repos/{repo}/verify/{id}"): "admin",
    ("GET", "/api/repos/{repo}/objects/{hash}"): "read",
    ("GET", "/api/repos/{repo}/packages"): "read",
    ("GET", "/api/repos/{repo}/packages/{spec}"): "read",
    ("DELETE", "/api/repos/{repo}/packages/{spec}"): "write",
    ("POST", "/api/repos/{repo}/packages/{spec}"): "read",
    ("POST", "/api/repos/{repo}/import"): "write",
    ("POST", "/api/repos/{repo}/import/{id}"): "write",
    ("GET", "/api/repos/{repo}/import/{id}"): "read",
    ("GET", "/api/repos/{repo}/export/{id}"): "read",
    ("POST", "/api/repos/{repo}/run/inputs"): "write",
    ("POST", "/api/repos/{repo}/run"): "write",
    ("GET", "/api/repos/{repo}/run/{id}"): "read",
    ("GET", "/api/repos/{repo}/workspaces"): "read",
    ("POST", "/api/repos/{repo}/workspaces"): "admin",
    ("GET", _WS): "read",
    ("DELETE", _WS): "admin",
    ("POST", f"{_WS}/deploy"): "write",
    ("GET", f"{_WS}/status"): "read",
    ("POST", f"{_WS}/export"): "read",
    ("GET", f"{_WS}/tasks"): "read",
    ("GET", f"{_WS}/tasks/{{task}}"): "read",
    ("GET", f"{_WS}/tasks/{{task}}/execution"): "read",
    ("GET", f"{_WS}/datasets"): "read",
    ("GET", f"{_WS}/datasets/{{path}}"): "read",
    ("PUT", f"{_WS}/datasets/{{path}}"): "write",
    ("POST", f"{_WS}/datasets/{{path}}"): "write",
    ("POST", f"{_WS}/dataflow"): "write",
    ("GET", f"{_WS}/dataflow/execution"): "read",
    ("POST", f"{_WS}/dataflow/cancel"): "write",
    ("GET", f"{_WS}/dataflow/logs"): "read",
    ("GET", f"{_WS}/dataflow/logs/{{task}}"): "read",
    ("GET", f"{_WS}/dataflow/runs"): "read",
    ("GET", _RUN): "read",
    ("GET", f"{_RUN}/events"): "read",
    ("POST", f"{_RUN}/cancel"): "write",
    # The web view's data routes: the same roles as the API routes they mirror.
    ("GET", "/ui/api/repos/{repo}/workspaces"): "read",
    ("GET", f"{_UI_WS}/graph"): "read",
    ("GET", f"{_UI_WS}/status"): "read",
    ("GET", f"{_UI_WS}/tasks/{{task}}"): "read",
    ("GET", f"{_UI_WS}/tasks/{{task}}/log"): "read",
    ("GET", f"{_UI_WS}/values/{{path}}"): "read",
    ("POST", f"{_UI_WS}/start"): "write",
    ("POST", f"{_UI_WS}/cancel"): "write",
    ("GET", f"{_UI_WS}/runs"): "read",
    ("GET", "/ui/api/repos/{repo}/runs/{run}/events"): "read",
}


def _typed(value: Any, cls: Any) -> bytes:
    return beast2.encode(wire.to_east(value, cls), wire.east_type_of(cls))


BODIES: dict[tuple[str, str], bytes] = {
    ("POST", "/api/repos/{repo}/gc"): _typed(GcPolicy(dry_run=True), GcPolicy),
    ("POST", "/api/repos/{repo}/import"): _typed(ImportRequest(1024), ImportRequest),
    ("POST", "/api/repos/{repo}/run/inputs"): _typed(UploadRequest("0" * 64, 10), UploadRequest),
    ("POST", "/api/repos/{repo}/workspaces"): _typed(WorkspaceRequest("made"), WorkspaceRequest),
    ("POST", f"{_WS}/deploy"): _typed(DeployRequest("hello@1.0.0"), DeployRequest),
    ("POST", f"{_WS}/export"): _typed(WorkspaceExportRequest(), WorkspaceExportRequest),
    ("PUT", f"{_WS}/datasets/{{path}}"): beast2.encode(42, wire.east_type_of(int)),
    ("POST", f"{_WS}/datasets/{{path}}"): _typed(UploadRequest("0" * 64, 10), UploadRequest),
    ("POST", f"{_WS}/dataflow"): _typed(StartOptions(), StartOptions),
}
#: Destructive routes go last in a sweep (the rest still has something to act on).
LAST = [
    ("DELETE", _WS),
    ("DELETE", "/api/repos/{repo}/packages/{spec}"),
    ("DELETE", "/api/repos/{repo}"),
]


@dataclass
class Policed:
    server: ServerProcess
    root: Path
    key: rsa.RSAPrivateKey
    routes: list[tuple[str, str]]

    def client(self, claims: dict[str, Any]) -> httpx.Client:
        """A client presenting a valid token with these claims."""
        now = int(time.time())
        base = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 600}
        token = jwt.encode({**base, **claims}, self.key, "RS256")
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30.0)


def _seed(path: Path, scratch: Path) -> None:
    zip_path = export_to(versioned_hello("1.0.0"), scratch)
    for args in (
        ("repo", "create", path),
        ("package", "import", path, zip_path),
        ("workspace", "deploy", path, "w", "hello@1.0.0"),
        ("start", path, "w"),
    ):
        r = run_cli(*args)
        assert r.code == 0, (args, r.err)


@pytest.fixture(scope="module")
def policed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Policed]:
    base = tmp_path_factory.mktemp("policy")
    root = base / "repos"
    root.mkdir()
    for name in ("swept", "other-a", "own-read", "own-write", "own-admin"):
        _seed(root / name, base)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = base / "provider.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    policy = base / "policy.toml"
    policy.write_text(POLICY)
    server = start_server(
        "--repos", root,
        "--auth-key", pem, "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE,
        "--policy", policy,
        log=base / "server.log",
    )  # fmt: skip
    try:
        doc = httpx.get(f"{server.url}/api/openapi.json").json()
        routes = [
            (method.upper(), template)
            for template, operations in doc["paths"].items()
            for method, op in operations.items()
            if op.get("security") and "{repo}" in template
        ]
        yield Policed(server, root, key, routes)
    finally:
        server.stop()


_PARAM = re.compile(r"\{(\w+)\}")


def url_of(method: str, template: str, repo: str) -> str:
    values = {
        "repo": repo,
        "ws": "w",
        "task": "double",
        "spec": "hello/1.0.0",
        "path": "inputs/x",
        "hash": "0" * 64,
        "id": "0123456789abcdef0123456789abcdef",
        "run": "019ad1e2-0000-7000-8000-000000000000",
    }
    if (method, template) == ("PUT", "/api/repos/{repo}"):
        values["repo"] = f"new-{repo}"
    path = _PARAM.sub(lambda m: values[m.group(1)], template)
    if method == "POST" and template.endswith("{spec}"):
        path += "/export"
    elif method == "POST" and template.endswith("{path}"):
        path += "/upload"
    return path


def send(client: httpx.Client, method: str, template: str, repo: str) -> httpx.Response:
    body = BODIES.get((method, template))
    headers = {"Content-Type": wire.BEAST2} if body is not None else {}
    if template.startswith("/ui/") and method == "POST":
        body, headers = b"{}", {"Content-Type": "application/json"}
    return client.request(method, url_of(method, template, repo), content=body, headers=headers)


def sweep_order(routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(routes, key=lambda r: LAST.index(r) + 1 if r in LAST else 0)


def test_the_role_table_lists_every_protected_route(policed: Policed) -> None:
    assert sorted(policed.routes) == sorted(NEEDS), sorted(set(policed.routes) ^ set(NEEDS))


@pytest.mark.parametrize("caller", list(CALLERS))
def test_every_route_allows_or_denies_by_role(policed: Policed, caller: str) -> None:
    digest = tree_digest(policed.root / "swept")
    denied, allowed = [], []
    with policed.client(CALLERS[caller]) as client:
        for method, template in sweep_order(policed.routes):
            needed = NEEDS[(method, template)]
            if RANK[caller] < RANK[needed]:
                for m in (method, "HEAD") if method == "GET" else (method,):
                    resp = send(client, m, template, "swept")
                    denied.append(f"{m} {template}")
                    assert resp.status_code == 403, (m, template, resp.status_code, resp.content)
                    if m != "HEAD" and template.startswith("/ui/"):
                        error = resp.json()["error"]  # the web view's routes answer in JSON
                        assert error["code"] == "permission_denied" and needed in error["message"]
                    elif m != "HEAD":
                        with pytest.raises(PermissionDenied) as info:
                            wire.decode_reply(resp.content, type(None))
                        assert needed in info.value.message, info.value.message
            else:
                resp = send(client, method, template, f"own-{caller}")
                allowed.append(f"{method} {template}")
                assert resp.status_code not in (401, 403), (
                    method, template, resp.status_code, resp.content[:300]
                )  # fmt: skip
    assert tree_digest(policed.root / "swept") == digest
    assert not (policed.root / "new-swept").exists()
    expected_allowed = sum(RANK[caller] >= RANK[n] for n in NEEDS.values())
    assert len(allowed) == expected_allowed, (caller, allowed)


def test_the_repository_list_shows_what_the_caller_may_read(policed: Policed) -> None:
    def names(claims: dict[str, Any]) -> list[str]:
        with policed.client(claims) as client:
            resp = client.get("/api/repos")
        assert resp.status_code == 200, resp.content
        listed: list[str] = wire.decode_reply(resp.content, list[str])
        return listed

    assert names(CALLERS["none"]) == []
    assert names(CALLERS["read"]) == sorted(p.name for p in policed.root.iterdir())
    assert names(OUTSIDER) == ["other-a"]
    with policed.client(OUTSIDER) as client:
        assert client.get("/api/repos/other-a/status").status_code == 200
        assert client.get("/api/repos/swept/status").status_code == 403


def test_a_policy_is_the_only_source_of_rights() -> None:
    """The check other routes (the web view's) call: pure, over the identity's claims."""
    assert Policy.everyone_admin().allows(None, "x", "admin")
    policy = load_policy_text(POLICY)
    ada = Identity("ada", None, {"sub": "ada", "scope": "openid e3:admin"})
    wendy = Identity("wendy", None, {"sub": "wendy", "groups": ["writers"]})
    nobody = Identity("nobody", None, {"sub": "nobody", "groups": "writers"})  # not a list
    assert policy.role_of(ada, "any") == "admin"
    assert policy.role_of(wendy, "any") == "write"
    assert policy.allows(wendy, "any", "read") and not policy.allows(wendy, "any", "admin")
    assert policy.role_of(nobody, "any") == "write"  # a space-separated string is accepted
    assert policy.role_of(Identity("eve", None, {"sub": "eve"}), "any") is None
    with pytest.raises(PermissionDenied, match="needs the admin role"):
        policy.check(wendy, "any", "admin")


def load_policy_text(text: str) -> Policy:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.toml"
        path.write_text(text)
        return load_policy(path)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[grant]]\nrole = 'owner'\nsubjects = ['a']\n", "role must be one of"),
        ("[[grant]]\nrole = 'read'\n", "names no subjects and no groups"),
        ("[[grant]]\nrole = 'read'\nsubjects = 'a'\n", "subjects must be a list"),
        ("[[grant]]\nrole = 'read'\nsubject = ['a']\n", "unknown key 'subject'"),
        ("[claims]\ngroup = 'g'\n", "unknown key 'group'"),
        ("grant = 5\n", "grants are written [[grant]]"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_mistakes_in_a_policy_file_are_named(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_policy(path)
    assert needle in info.value.message and str(path) in info.value.message


def test_the_server_refuses_a_bad_policy_and_a_policy_without_logins(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "repos").mkdir()
    bad = tmp_path / "bad.toml"
    bad.write_text("[[grant]]\nrole = 'root'\nsubjects = ['a']\n")
    good = tmp_path / "good.toml"
    good.write_text(POLICY)
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    auth = ["--auth-key", str(pem), "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE]
    for args, needle in (
        (["--policy", str(bad), *auth], "role must be one of"),
        (["--policy", str(good)], "--policy needs authentication"),
    ):
        proc = subprocess.run(
            [str(E3_API_SERVER), "--repos", str(tmp_path / "repos"), "--port", "0", *args],
            capture_output=True,
            timeout=60,
        )
        err = proc.stderr.decode()
        assert proc.returncode == 2, err
        assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_without_a_policy_the_server_says_everyone_is_admin(tmp_path: Path) -> None:
    (tmp_path / "repos").mkdir()
    pem = tmp_path / "k.pem"
    pem.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    server = start_server(
        "--repos", tmp_path / "repos",
        "--auth-key", pem, "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE,
        log=tmp_path / "server.log",
    )  # fmt: skip
    try:
        assert server.proc.stdout is not None
        banner = "".join(server.proc.stdout.readline().decode() for _ in range(3))
        assert "no --policy given: every authenticated caller is admin" in banner, banner
    finally:
        server.stop()
