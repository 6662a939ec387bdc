"""What a client asks of a server rather than of one repository: create one, list them."""

from __future__ import annotations

import httpx

from e3.base.config import Settings
from e3.client.http import Http, origin_of, quote, split_url


def create_remote(
    url: str, settings: Settings, *, transport: httpx.BaseTransport | None = None
) -> str:
    """Create a repository on a server; returns its name."""
    origin, name = split_url(url)
    http = Http(origin, settings, transport=transport)
    try:
        result: str = http.call("PUT", f"/api/repos/{quote(name)}", str)
        return result
    finally:
        http.close()


def list_remote(url: str, settings: Settings) -> list[str]:
    """Names of the repositories a server serves."""
    http = Http(origin_of(url), settings)
    try:
        names: list[str] = http.call("GET", "/api/repos", list[str])
        return names
    finally:
        http.close()
