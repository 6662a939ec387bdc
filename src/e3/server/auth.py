"""Authentication: bearer JWT validation, and a small built-in OIDC device-flow provider.

A server runs in one of three modes:

* no authentication (the default; nothing asks for a login);
* ``--oidc``: the server is its own identity provider (RS256 keys made at
  start, discovery document, JWKS, device authorization, an approval page,
  token and refresh grants with refresh-token rotation). Approving a login
  needs the server's approval secret (``E3_AUTH_APPROVAL_SECRET``, or one
  made at start and printed on the server's console), so knowing a user code
  is not enough to log oneself in; for tests, ``E3_AUTH_AUTO_APPROVE=1``
  approves device codes at once;
* external: tokens signed by another provider, checked against a PEM public
  key or a JWKS URL, an issuer and an audience.

Bearer tokens must be RS256 JWTs with valid ``exp``, ``nbf``, ``iss`` and
``aud``; a refresh token (``token_type: refresh``) is not accepted as an
access token (the reference accepted it).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from e3.errors import AuthError

CLIENT_ID = "e3-cli"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels or look-alikes


@dataclass(frozen=True)
class Identity:
    """Who made a request."""

    subject: str
    email: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)


class TokenValidator:
    """Checks bearer tokens (signature, expiry, issuer, audience, token type)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        key: Any | None = None,
        jwks_url: str | None = None,
        leeway: float = 0.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.key = key
        self.leeway = leeway
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None

    @property
    def fetches_keys(self) -> bool:
        """Whether validating may download keys (a JWKS URL): call it off the event loop."""
        return self._jwks is not None

    def validate(self, token: str) -> Identity:
        """The identity in a valid access token.

        Raises:
            AuthError: with a reason (expired, wrong issuer…), never the token itself.
        """
        try:
            key: Any = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self.key
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"], "verify_nbf": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("access token expired") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("access token from the wrong issuer") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("access token for another audience") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthError("access token not valid yet") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthError(f"invalid access token ({type(exc).__name__})") from exc
        if claims.get("token_type", "access") != "access":
            raise AuthError("a refresh token is not an access token")
        return Identity(str(claims["sub"]), claims.get("email"), claims)


@dataclass
class _DeviceCode:
    user_code: str
    expires: float
    approved: bool = False
    subject: str = "dev-user"


class Provider:
    """The built-in OIDC device-flow provider (in memory: a restart invalidates tokens)."""

    def __init__(
        self,
        issuer: str,
        *,
        access_ttl: float = 3600.0,
        refresh_ttl: float = 90 * 86400.0,
        auto_approve: bool = False,
        approval_secret: str | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.auto_approve = auto_approve
        #: What an approver must type besides the user code (``None``: approval disabled).
        self.approval_secret = approval_secret
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        self._devices: dict[str, _DeviceCode] = {}
        self._refresh: dict[str, str] = {}  # jti -> subject, for rotation
        self._lock = threading.Lock()

    @property
    def public_key(self) -> Any:
        """The key tokens are verified with."""
        return self._key.public_key()

    def validator(self) -> TokenValidator:
        """A validator for this provider's tokens."""
        return TokenValidator(issuer=self.issuer, audience=self.issuer, key=self.public_key)

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set."""
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def discovery(self) -> dict[str, Any]:
        """The OpenID discovery document."""
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
            "device_authorization_endpoint": f"{self.issuer}/oauth2/device_authorization",
            "token_endpoint": f"{self.issuer}/oauth2/token",
            "grant_types_supported": [DEVICE_GRANT, "refresh_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def pem(self) -> bytes:
        """The public key as PEM (for servers configured with ``--auth-key``)."""
        return bytes(
            self.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def device_authorization(self) -> dict[str, Any]:
        """Start a device flow."""
        code = secrets.token_hex(32)
        user = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
        user_code = f"{user[:4]}-{user[4:]}"
        with self._lock:
            now = time.time()
            self._devices = {k: v for k, v in self._devices.items() if v.expires > now}
            self._devices[code] = _DeviceCode(user_code, now + 300, self.auto_approve)
        return {
            "device_code": code,
            "user_code": user_code,
            "verification_uri": f"{self.issuer}/device",
            "verification_uri_complete": f"{self.issuer}/device?user_code={user_code}",
            "expires_in": 300,
            "interval": 1,
        }

    def approve(self, user_code: str, secret: str) -> bool:
        """Approve the device flow showing ``user_code``, if ``secret`` is the approval secret."""
        expected = self.approval_secret
        if expected is None or not secrets.compare_digest(secret.encode(), expected.encode()):
            return False
        with self._lock:
            for d in self._devices.values():
                if d.user_code == user_code.strip().upper() and d.expires > time.time():
                    d.approved = True
                    return True
        return False

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: ``(HTTP status, JSON body)``."""
        grant = form.get("grant_type", "")
        if grant == DEVICE_GRANT:
            with self._lock:
                d = self._devices.get(form.get("device_code", ""))
                if d is None or d.expires < time.time():
                    return 400, {"error": "expired_token"}
                if not d.approved:
                    return 400, {"error": "authorization_pending"}
                del self._devices[form["device_code"]]
            return 200, self._issue(d.subject)
        if grant == "refresh_token":
            try:
                claims = jwt.decode(
                    form.get("refresh_token", ""),
                    self.public_key,
                    algorithms=["RS256"],
                    audience=self.issuer,
                    issuer=self.issuer,
                )
            except jwt.PyJWTError:
                return 400, {"error": "invalid_grant"}
            with self._lock:
                if (
                    claims.get("token_type") != "refresh"
                    or self._refresh.pop(str(claims.get("jti")), None) is None
                ):
                    return 400, {"error": "invalid_grant"}  # unknown or already used
            return 200, self._issue(str(claims["sub"]))
        return 400, {"error": "unsupported_grant_type"}

    def _issue(self, subject: str) -> dict[str, Any]:
        now = int(time.time())
        base = {"sub": subject, "iss": self.issuer, "aud": self.issuer, "iat": now, "nbf": now}
        headers = {"kid": self.kid}
        access = jwt.encode(
            {
                **base,
                "exp": now + int(self.access_ttl),
                "token_type": "access",
                "jti": secrets.token_hex(8),
            },
            self._key,
            "RS256",
            headers=headers,
        )
        jti = secrets.token_hex(16)
        refresh = jwt.encode(
            {**base, "exp": now + int(self.refresh_ttl), "token_type": "refresh", "jti": jti},
            self._key,
            "RS256",
            headers=headers,
        )
        with self._lock:
            self._refresh[jti] = subject
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": int(self.access_ttl),
        }


def load_public_key(pem: bytes) -> Any:
    """A PEM public key for :class:`TokenValidator`."""
    return serialization.load_pem_public_key(pem)
