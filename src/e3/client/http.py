"""HTTP plumbing for talking to an e3 server: auth headers, refresh, error mapping.

Every error a server reports comes back as the same :class:`~e3.errors.E3Error`
kind it was on the server (the wire code names it); transport failures become
:class:`~e3.errors.RemoteError`. A stored login is used when there is one and
refreshed when it expires; a server that needs no login gets none.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from e3.base.config import Settings
from e3.client.credentials import Credential, CredentialStore, refresh
from e3.errors import AuthError, RemoteError, UsageError
from e3.model import wire

#: Query parameters; a list of values repeats the name (``{"task": ["a", "b"]}``).
Params = Mapping[str, str | Sequence[str]]


def split_url(url: str) -> tuple[str, str]:
    """``http://host:port/repos/<name>`` → (``http://host:port``, ``<name>``)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(
            f"not a repository URL: {url} (expected http(s)://host[:port]/repos/<name>)"
        )
    parts = [p for p in parsed.path.split("/") if p]
    if parts[:1] == ["api"]:
        parts = parts[1:]
    if len(parts) != 2 or parts[0] != "repos":
        raise UsageError(
            f"not a repository URL: {url} (expected http(s)://host[:port]/repos/<name>)"
        )
    return f"{parsed.scheme}://{parsed.netloc}", urllib.parse.unquote(parts[1])


def origin_of(url: str) -> str:
    """``http://host:port`` of any URL on a server."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"not a server URL: {url}")
    return f"{parsed.scheme}://{parsed.netloc}"


def quote(segment: str) -> str:
    """One URL path segment, percent-encoded (``/`` included, and ``.``/``..`` as ``%2E``).

    ``.`` and ``..`` are valid names (of a dataset field, say), but as plain
    segments URL normalisation removes them (httpx does, before sending):
    ``…/inputs/..`` would reach the workspace's root. Encoded, they are not dot
    segments, and the server decodes each segment back to the same name.
    """
    if segment in (".", ".."):
        return segment.replace(".", "%2E")
    return urllib.parse.quote(segment, safe="")


class Http:
    """A connection to one server."""

    def __init__(
        self,
        origin: str,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.origin = origin
        self.store = CredentialStore(settings.credentials_file)
        self.client = httpx.Client(base_url=origin, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    # ── auth ─────────────────────────────────────────────────────────────
    def credential(self) -> Credential | None:
        """The stored login for this server, refreshed first if it has expired."""
        cred = self.store.get(self.origin)
        if cred is not None and cred.expired and cred.refresh_token:
            cred = self._refreshed(cred)
        return cred

    def _refreshed(self, stale: Credential) -> Credential:
        """A fresh credential in place of ``stale``, whichever e3 process refreshes it.

        Refresh tokens are single-use, so two commands refreshing the same login at
        once must not both try: the credentials file is locked around read, refresh
        and write, and a login another process already refreshed is simply used.
        On failure the login is forgotten only if it is still the one that failed.
        """
        with self.store.locked():
            current = self.store.get(self.origin)
            if current is not None and current.access_token != stale.access_token:
                return current
            try:
                fresh = refresh(self.client, self.origin, stale)
            except AuthError:
                now = self.store.get(self.origin)
                if now is not None and now.refresh_token == stale.refresh_token:
                    self.store.put(self.origin, None)
                raise
            self.store.put(self.origin, fresh)
            return fresh

    def request(
        self,
        method: str,
        path: str,
        *,
        content: Any = None,
        params: Params | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        stream: bool = False,
    ) -> httpx.Response:
        """Send a request (with the stored login, refreshed once on a 401)."""
        for attempt in (0, 1):
            h = dict(headers or {})
            cred = self.credential() if auth else None
            if cred is not None:
                h["Authorization"] = f"Bearer {cred.access_token}"
            try:
                req = self.client.build_request(
                    method, path, content=content, params=params, headers=h
                )
                resp = self.client.send(req, stream=stream)
            except httpx.TransportError as exc:
                raise RemoteError(f"cannot reach {self.origin}: {exc}") from exc
            if resp.status_code == 401 and attempt == 0 and cred is not None and cred.refresh_token:
                resp.close()
                self._refreshed(cred)
                continue
            return resp
        raise AssertionError("unreachable")

    # ── typed calls ──────────────────────────────────────────────────────
    def check(self, resp: httpx.Response) -> httpx.Response:
        """Raise the error a reply carries, if any."""
        if resp.status_code < 400:
            return resp
        resp.read()
        if resp.headers.get("content-type", "").startswith(wire.BEAST2) and resp.content:
            wire.decode_reply(resp.content, type(None))  # raises the E3Error it carries
        if resp.status_code == 401:
            raise AuthError(f"{self.origin} needs a login (run `e3 login {self.origin}`)")
        text = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
        raise RemoteError(f"{self.origin} answered HTTP {resp.status_code} {text}".strip())

    def call(
        self,
        method: str,
        path: str,
        reply_type: Any,
        *,
        body: Any = None,
        body_type: Any = None,
        params: Params | None = None,
    ) -> Any:
        """A typed request: ``body`` (a Python value of ``body_type``) in, the reply out."""
        content = None
        headers = {"Accept": wire.BEAST2}
        if body_type is not None:
            from e3.codec import beast2

            content = beast2.encode(wire.to_east(body, body_type), wire.east_type_of(body_type))
            headers["Content-Type"] = wire.BEAST2
        resp = self.check(
            self.request(method, path, content=content, params=params, headers=headers)
        )
        return wire.decode_reply(resp.content, reply_type)

    def call_east(
        self, method: str, path: str, east_type: Any, params: Params | None = None
    ) -> Any:
        """A typed request whose reply is decoded as an East value of ``east_type``."""
        resp = self.check(
            self.request(method, path, params=params, headers={"Accept": wire.BEAST2})
        )
        return wire.decode_reply_east(resp.content, east_type)

    def upload(self, url: str, chunks: Iterator[bytes] | bytes, size: int) -> None:
        """``PUT`` bytes to an upload URL (no login: the URL's id is the credential)."""
        path = urllib.parse.urlsplit(url).path
        self.check(
            self.request(
                "PUT",
                path,
                content=chunks,
                auth=False,
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            )
        )
