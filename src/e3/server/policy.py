"""Authorization: which callers may read, write and administer which repositories.

Authentication (:mod:`e3.server.auth`) says who a caller is; a :class:`Policy`
says what they may do. Roles are per repository and ordered, each including
the ones before it:

* ``read``: list, get, status, logs, runs, exports and downloads;
* ``write``: set datasets, start and cancel runs, import and remove packages,
  deploy, ``e3 run``;
* ``admin``: create and remove repositories and workspaces, gc, verify.

Every API route declares the role it needs (``Endpoint.role``) and the route
wrapper of :mod:`e3.server.app` checks it for the route's ``{repo}`` before
the handler runs. Other routes that touch a repository's data (the web view's, say) call
:func:`require` themselves::

    from e3.server.policy import require

    async def ui_data(request: Request) -> Response:
        repo = request.path_params["repo"]
        require(request, repo, "read")  # PermissionDenied (403) unless allowed
        ...

A policy file (``e3 serve --policy policy.toml``) grants roles to subjects and
groups, read from token claims whose names it configures::

    [claims]
    subject = "sub"                # the claim naming the caller (default "sub")
    groups = ["groups", "scope"]   # claims listing groups: arrays or space-separated

    [[grant]]
    role = "admin"
    subjects = ["alice@example.com"]
    repos = ["*"]                  # glob patterns of repository names (default "*")

    [[grant]]
    role = "read"
    groups = ["analysts", "e3:read"]
    repos = ["sales", "sales-*"]

A caller's role on a repository is the highest any matching grant gives; with
none, every request about that repository is refused (403). Without a policy
file every authenticated caller is admin (the server says so at start-up);
without authentication there is nobody to tell apart, so nothing is checked.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request

from e3.errors import PermissionDenied, UsageError
from e3.server.auth import Identity
from e3.server.http import Role

ROLES: tuple[Role, ...] = ("read", "write", "admin")
_RANK: dict[str, int] = {r: i for i, r in enumerate(ROLES)}


@dataclass(frozen=True)
class Grant:
    """A role on the repositories matching ``repos``, for these subjects and groups."""

    role: Role
    repos: tuple[str, ...] = ("*",)
    subjects: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def covers(self, subject: str, groups: set[str], repo: str) -> bool:
        """Whether this grant applies to that caller on that repository."""
        if subject not in self.subjects and not (groups & self.groups):
            return False
        return any(fnmatch.fnmatchcase(repo, pattern) for pattern in self.repos)


@dataclass(frozen=True)
class Policy:
    """Grants, and where in a token a caller's subject and groups are found."""

    grants: tuple[Grant, ...] = ()
    subject_claim: str = "sub"
    group_claims: tuple[str, ...] = ("groups",)
    #: Every caller is admin (no policy file).
    open: bool = False
    source: str = field(default="", compare=False)

    @classmethod
    def everyone_admin(cls) -> Policy:
        """The policy of a server given no policy file."""
        return cls(open=True)

    def role_of(self, identity: Identity | None, repo: str) -> Role | None:
        """The highest role ``identity`` has on ``repo`` (``None``: no access)."""
        if self.open:
            return "admin"
        if identity is None:
            return None
        subject = str(identity.claims.get(self.subject_claim, identity.subject))
        groups = self.groups_of(identity)
        best: Role | None = None
        for grant in self.grants:
            if grant.covers(subject, groups, repo) and (
                best is None or _RANK[grant.role] > _RANK[best]
            ):
                best = grant.role
        return best

    def groups_of(self, identity: Identity) -> set[str]:
        """Group names from the configured claims (arrays of names, or space-separated)."""
        out: set[str] = set()
        for claim in self.group_claims:
            value = identity.claims.get(claim)
            if isinstance(value, str):
                out.update(value.split())
            elif isinstance(value, list | tuple):
                out.update(str(v) for v in value if isinstance(v, str | int))
        return out

    def allows(self, identity: Identity | None, repo: str, role: Role) -> bool:
        """Whether ``identity`` has ``role`` (or a higher one) on ``repo``."""
        have = self.role_of(identity, repo)
        return have is not None and _RANK[have] >= _RANK[role]

    def check(self, identity: Identity | None, repo: str, role: Role) -> None:
        """Refuse unless ``identity`` has ``role`` on ``repo``.

        Raises:
            PermissionDenied: naming the role missing and the repository.
        """
        if not self.allows(identity, repo, role):
            who = identity.subject if identity is not None else "an anonymous caller"
            raise PermissionDenied(
                f"{who[:100]} may not {_VERBS[role]} repository '{repo[:128]}' "
                f"(needs the {role} role)",
                repo=repo[:128],
                role=role,
            )

    def summary(self) -> str:
        """A few words for the start-up banner."""
        if self.open:
            return "everyone is admin"
        return f"{len(self.grants)} grants"


_VERBS = {"read": "read", "write": "write to", "admin": "administer"}


def require(request: Request, repo: str, role: Role) -> None:
    """Refuse the request unless its caller has ``role`` on ``repo`` (see the module docstring).

    The identity is the one the route wrapper authenticated
    (``request.state.identity``); the policy is the serving app's.

    Raises:
        PermissionDenied: the caller lacks that role there.
    """
    policy: Policy = request.app.state.e3.config.policy
    policy.check(getattr(request.state, "identity", None), repo, role)


def load_policy(path: Path) -> Policy:
    """Read a policy file (TOML, see the module docstring).

    Raises:
        UsageError: the file cannot be read, or names a key, role or value wrongly;
            the message says which file and which grant.
    """
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--policy {path}: cannot read it ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--policy {path}: not valid TOML ({exc})") from exc
    where = f"--policy {path}"
    _only(doc, {"claims", "grant"}, where)
    claims = doc.get("claims", {})
    if not isinstance(claims, dict):
        raise UsageError(f"{where}: [claims] must be a table")
    _only(claims, {"subject", "groups"}, f"{where} [claims]")
    subject = claims.get("subject", "sub")
    groups = claims.get("groups", ["groups"])
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(subject, str) or not _strings(groups):
        raise UsageError(f"{where} [claims]: subject is a claim name, groups a list of them")
    grants = doc.get("grant", [])
    if not isinstance(grants, list):
        raise UsageError(f"{where}: grants are written [[grant]]")
    return Policy(
        tuple(_grant(g, f"{where} grant {i + 1}") for i, g in enumerate(grants)),
        subject_claim=subject,
        group_claims=tuple(groups),
        source=str(path),
    )


def _grant(table: Any, where: str) -> Grant:
    if not isinstance(table, dict):
        raise UsageError(f"{where}: not a table")
    _only(table, {"role", "repos", "subjects", "groups"}, where)
    role = table.get("role")
    if role not in ROLES:
        raise UsageError(f"{where}: role must be one of {', '.join(ROLES)} (got {role!r})")
    lists = {
        k: table.get(k, ["*"] if k == "repos" else []) for k in ("repos", "subjects", "groups")
    }
    for key, value in lists.items():
        if not _strings(value):
            raise UsageError(f"{where}: {key} must be a list of strings")
    if not lists["subjects"] and not lists["groups"]:
        raise UsageError(f"{where}: names no subjects and no groups")
    return Grant(
        role,
        tuple(lists["repos"]),
        frozenset(lists["subjects"]),
        frozenset(lists["groups"]),
    )


def _only(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(
            f"{where}: unknown key {unknown[0]!r} (expected {', '.join(sorted(allowed))})"
        )


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
