"""Fixtures for the HTTP API tests: real ``e3-api-server`` processes on 127.0.0.1.

Servers are started once per test session (per xdist worker) and shared: every test
works in repositories of its own, named uniquely, so tests cannot see each other's data.
"""

from __future__ import annotations
