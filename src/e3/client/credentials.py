"""Logins to e3 servers: the credentials file, the device flow, token refresh.

Credentials live in ``$E3_HOME/credentials.json`` (``E3_CREDENTIALS_PATH``
overrides it), readable by the user only (directory 0700, file 0600), as
``{"version": 1, "credentials": {"<origin>": {"accessToken", "refreshToken",
"expiresAt"}}}`` — the reference's format. A server without authentication
needs no credentials at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e3.errors import AuthError, RemoteError

CLIENT_ID = "e3-cli"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class Credential:
    """Tokens for one server."""

    access_token: str
    refresh_token: str | None
    expires_at: float  # seconds since the epoch

    @property
    def expired(self) -> bool:
        """Whether the access token has expired (or will within 30 seconds)."""
        return time.time() > self.expires_at - 30


class CredentialStore:
    """The credentials file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"version": 1, "credentials": {}}
        except (OSError, ValueError) as exc:
            raise AuthError(f"cannot read credentials file {self.path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("credentials"), dict):
            raise AuthError(f"credentials file {self.path} is damaged")
        return data

    def get(self, origin: str) -> Credential | None:
        """The credential for a server origin (``http://host:port``), if any."""
        entry = self._load()["credentials"].get(origin)
        if not isinstance(entry, dict) or "accessToken" not in entry:
            return None
        expires = entry.get("expiresAt", "")
        try:
            when = datetime.fromisoformat(str(expires).replace("Z", "+00:00")).timestamp()
        except ValueError:
            when = 0.0
        return Credential(str(entry["accessToken"]), entry.get("refreshToken"), when)

    def all(self) -> dict[str, Credential]:
        """Every stored credential by origin."""
        out = {}
        for origin in self._load()["credentials"]:
            cred = self.get(origin)
            if cred is not None:
                out[origin] = cred
        return out

    def put(self, origin: str, cred: Credential | None) -> None:
        """Store (or, with ``None``, remove) a server's credential."""
        data = self._load()
        if cred is None:
            data["credentials"].pop(origin, None)
        else:
            data["credentials"][origin] = {
                "accessToken": cred.access_token,
                "refreshToken": cred.refresh_token,
                "expiresAt": datetime.fromtimestamp(cred.expires_at, UTC).isoformat(),
            }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        # mkstemp creates a new file readable by the user only (never reuses a stale one).
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the credentials file's lock (an ``flock`` on a companion file) for a refresh."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _post_form(http: Any, url: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    try:
        r = http.post(url, data=form)
    except Exception as exc:
        raise RemoteError(f"cannot reach {url}: {exc}") from exc
    try:
        body = r.json()
    except ValueError:
        body = {}
    return r.status_code, body if isinstance(body, dict) else {}


def discover(http: Any, origin: str) -> dict[str, Any]:
    """The server's OpenID configuration."""
    try:
        r = http.get(f"{origin}/.well-known/openid-configuration")
    except Exception as exc:
        raise RemoteError(f"cannot reach {origin}: {exc}") from exc
    if r.status_code != 200:
        raise AuthError(f"{origin} offers no login (it may not require one)")
    data: dict[str, Any] = r.json()
    return data


def device_login(
    http: Any,
    origin: str,
    *,
    show: Callable[[str], None],
    open_browser: bool = True,
    timeout: float = 300.0,
) -> Credential:
    """Log in with the OAuth device flow; returns the new credential."""
    config = discover(http, origin)
    status, start = _post_form(
        http, config["device_authorization_endpoint"], {"client_id": CLIENT_ID}
    )
    if status != 200 or "device_code" not in start:
        raise AuthError(f"device login refused by {origin}")
    show(f"To log in, open {start['verification_uri']} and enter the code {start['user_code']}")
    show(f"  (or open {start.get('verification_uri_complete', start['verification_uri'])})")
    if open_browser:
        try:
            import webbrowser

            webbrowser.open(start.get("verification_uri_complete", start["verification_uri"]))
        except Exception:
            pass
    interval = float(start.get("interval", 1))
    deadline = time.monotonic() + min(timeout, float(start.get("expires_in", timeout)))
    while time.monotonic() < deadline:
        status, body = _post_form(
            http,
            config["token_endpoint"],
            {
                "grant_type": DEVICE_GRANT,
                "device_code": start["device_code"],
                "client_id": CLIENT_ID,
            },
        )
        if status == 200 and "access_token" in body:
            return _credential(body)
        error = body.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            raise AuthError(f"login failed: {error or status}")
        time.sleep(interval)  # the device flow's polling interval, set by the server
    raise AuthError("login timed out before it was approved")


def refresh(http: Any, origin: str, cred: Credential) -> Credential:
    """A new credential from the refresh token (rotated by the server)."""
    if not cred.refresh_token:
        raise AuthError("login expired (run `e3 login` again)")
    config = discover(http, origin)
    status, body = _post_form(
        http,
        config["token_endpoint"],
        {
            "grant_type": "refresh_token",
            "refresh_token": cred.refresh_token,
            "client_id": CLIENT_ID,
        },
    )
    if status != 200 or "access_token" not in body:
        raise AuthError("login expired and could not be refreshed (run `e3 login` again)")
    return _credential(body)


def _credential(body: dict[str, Any]) -> Credential:
    return Credential(
        str(body["access_token"]),
        body.get("refresh_token"),
        time.time() + float(body.get("expires_in", 3600)),
    )


def token_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT, for ``e3 auth whoami``."""
    import base64

    try:
        payload = token.split(".")[1]
        data: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
    except (IndexError, ValueError) as exc:
        raise AuthError("the stored token is not a JWT") from exc
    return data
