"""Connections under hostile load: idle sockets, slow headers and bodies, a full house.

A server with room for 48 connections, 2 s to send headers, 2 s of silence allowed in a
body and 1 s of keep-alive. The unfixed server kept every connection until its client
closed it: 20,400 idle sockets took it to its file descriptor limit, it refused everyone
and logged each failed accept (221,183 lines). Here idle sockets are evicted to make room
for real clients and closed after the header timeout, a full house of busy requests is
answered 503 at once, clients vanishing mid-body leave no traceback, and repeated
conditions are logged once per minute.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from e3.errors import E3Error, ServiceUnavailable
from e3.model import wire
from fuzz import bombs
from tests_support import Pinger, ServerProcess, run_cli, start_server, tree_digest, wait_for

pytestmark = pytest.mark.timeout(120)

CAP = 48
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
#: How long after a timeout the server may take to act on it (its sweep runs every second).
SLACK = 3.0
PUT_TARGET = "/api/repos/main/workspaces/ws/datasets/inputs/n"


@dataclass
class Guarded:
    server: ServerProcess
    root: Path
    host: str
    port: int

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=10)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.server.proc.pid}/fd"))

    def log(self) -> str:
        return self.server.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    base = tmp_path_factory.mktemp("conn")
    root = base / "repos"
    root.mkdir()
    zip_path = base / "bombs.zip"
    zip_path.write_bytes(bombs.base_package_zip())
    for args in (
        ("repo", "create", root / "main"),
        ("package", "import", root / "main", zip_path),
        ("workspace", "deploy", root / "main", "ws", "bombs"),
    ):
        r = run_cli(*args)
        assert r.code == 0, (args, r.err)
    server = start_server(
        "--repos", root,
        "--max-connections", str(CAP),
        "--header-timeout", f"{HEADER_TIMEOUT:g}s",
        "--body-timeout", f"{BODY_TIMEOUT:g}s",
        "--keep-alive", "1s",
        log=base / "server.log",
    )  # fmt: skip
    url = urllib.parse.urlsplit(server.url)
    assert url.hostname and url.port
    try:
        yield Guarded(server, root, url.hostname, url.port)
    finally:
        server.stop()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (EOF or reset), without blocking."""
    sock.setblocking(False)
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)
    return data == b"" or data.startswith(b"HTTP/1.1 503")


def stalled_body(g: Guarded) -> socket.socket:
    """A PUT whose handler is reading a body that stops coming (after ``100 Continue``)."""
    sock = g.connect()
    sock.sendall(
        f"PUT {PUT_TARGET} HTTP/1.1\r\nHost: x\r\nContent-Type: {wire.BEAST2}\r\n"
        "Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    assert sock.recv(1024).startswith(b"HTTP/1.1 100"), "the request did not start"
    sock.sendall(b"\x89East")
    return sock


def test_idle_sockets_cannot_lock_real_clients_out(guarded: Guarded) -> None:
    """Six times the cap in idle sockets: the server's descriptors stay bounded, a client
    that sends requests is served at once, and every idle socket is closed after the
    header timeout."""
    before = guarded.fds()
    idle: list[socket.socket] = []
    try:
        with Pinger(guarded.server.url) as pings:
            for _ in range(6 * CAP):
                idle.append(guarded.connect())
            for _ in range(10):  # fresh clients, each on a connection of its own
                t0 = time.monotonic()
                assert httpx.get(guarded.server.url + "/api/repos", timeout=5).status_code == 200
                fresh = time.monotonic() - t0
                assert fresh < 1.0, f"a fresh client waited {fresh:.2f} s"
        pings.assert_responsive(0.1)
        assert guarded.fds() <= before + CAP + 8, (guarded.fds(), before)
        t0 = time.monotonic()
        wait_for(
            lambda: all(closed_by_server(s) for s in idle),
            "the server to close every idle socket",
            timeout=HEADER_TIMEOUT + SLACK,
        )
        assert time.monotonic() - t0 <= HEADER_TIMEOUT + SLACK
    finally:
        for s in idle:
            s.close()
    assert guarded.log().count("connection limit") <= 2, guarded.log()[-2000:]


def test_headers_sent_too_slowly_are_cut_off(guarded: Guarded) -> None:
    with guarded.connect() as sock:
        sock.sendall(b"GET /api/repos HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        t0 = time.monotonic()
        wait_for(lambda: closed_by_server(sock), "the slow headers to be cut off", timeout=10)
        assert HEADER_TIMEOUT - 0.5 <= time.monotonic() - t0 <= HEADER_TIMEOUT + SLACK


def test_a_stalled_body_is_cut_off_and_changes_nothing(guarded: Guarded) -> None:
    digest = tree_digest(guarded.root)
    with stalled_body(guarded) as sock:
        t0 = time.monotonic()
        wait_for(lambda: closed_by_server(sock), "the stalled body to be cut off", timeout=10)
        assert BODY_TIMEOUT - 0.5 <= time.monotonic() - t0 <= BODY_TIMEOUT + SLACK
    assert tree_digest(guarded.root) == digest


def test_a_full_house_of_busy_requests_gets_a_fast_503(guarded: Guarded) -> None:
    """Every connection busy with a request: a newcomer is answered 503 (a Beast2 error the
    client turns into ServiceUnavailable) at once, and served again once they are gone."""
    busy = [stalled_body(guarded) for _ in range(CAP)]
    try:
        with guarded.connect() as extra:
            t0 = time.monotonic()
            extra.sendall(b"GET /api/repos HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := extra.recv(65536):
                reply += chunk
            assert time.monotonic() - t0 < 0.5
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), head
        assert b"Retry-After: 1" in head
        with pytest.raises(ServiceUnavailable):
            wire.decode_reply(body, type(None))
    finally:
        for s in busy:
            s.close()
    wait_for(
        lambda: httpx.get(guarded.server.url + "/api/repos", timeout=5).status_code == 200,
        "the server to serve again",
    )


def test_clients_vanishing_mid_body_leave_no_traceback(guarded: Guarded) -> None:
    digest = tree_digest(guarded.root)
    for i in range(50):
        sock = guarded.connect()
        sock.sendall(
            f"PUT {PUT_TARGET} HTTP/1.1\r\nHost: x\r\nContent-Type: {wire.BEAST2}\r\n"
            "Content-Length: 1000\r\n\r\n\x89East".encode()
        )
        if i % 2:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        sock.close()
    wait_for(
        lambda: httpx.get(guarded.server.url + "/api/repos", timeout=5).status_code == 200,
        "the server to answer",
    )
    log = guarded.log()
    assert "Exception in ASGI application" not in log and "Traceback" not in log, log[-3000:]
    assert tree_digest(guarded.root) == digest


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/api/repos/main", {"PUT", "DELETE"}),
        ("POST", "/api/repos", {"GET", "HEAD"}),
        ("DELETE", PUT_TARGET, {"GET", "HEAD", "PUT", "POST"}),
        ("PUT", "/api/repos/main/workspaces/ws", {"GET", "HEAD", "DELETE"}),
    ],
)
def test_405_lists_every_method_of_the_path(
    guarded: Guarded, method: str, path: str, allowed: set[str]
) -> None:
    resp = httpx.request(method, guarded.server.url + path, timeout=5)
    assert resp.status_code == 405
    assert {m.strip() for m in resp.headers["allow"].split(",")} == allowed
    with pytest.raises(E3Error) as info:
        wire.decode_reply(resp.content, type(None))
    assert info.value.spec.code == "method_not_allowed"


def test_a_flood_of_idle_sockets_never_exhausts_the_descriptor_limit(tmp_path: Path) -> None:
    """The issue's probe at scale: a server whose ``ulimit -n`` is 512 (its cap is then
    256), three times that in idle sockets. The unfixed server reached its limit, answered
    nobody new and logged every failed accept (2.7 million lines for 3,000 sockets)."""
    import resource
    import subprocess

    from tests_support import E3_API_SERVER

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2000:
        pytest.skip(f"this test opens 1,500 sockets; the descriptor limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2000), hard))
    (tmp_path / "repos").mkdir()
    log = tmp_path / "server.log"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [str(E3_API_SERVER), "--repos", str(tmp_path / "repos"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=err,
            preexec_fn=limit,
        )
    idle: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().split()[-1]
        assert url.startswith("http://"), url
        host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
        most = 0
        for i in range(1500):
            with contextlib.suppress(OSError):
                idle.append(socket.create_connection((host, port), timeout=5))
            if i % 100 == 0:
                most = max(most, len(os.listdir(f"/proc/{proc.pid}/fd")))
        for _ in range(10):
            assert httpx.get(url + "/api/repos", timeout=10).status_code == 200
        most = max(most, len(os.listdir(f"/proc/{proc.pid}/fd")))
        assert most < 512 - 64, f"the server held {most} descriptors (limit 512)"
        wait_for(
            lambda: all(closed_by_server(s) for s in idle),
            "the server to close every idle socket",
            timeout=10 + SLACK,
        )
    finally:
        for s in idle:
            s.close()
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    lines = log.read_text(errors="replace").splitlines()
    assert len(lines) < 20, lines[:20]
    assert not any("Too many open files" in line for line in lines), lines[:20]
