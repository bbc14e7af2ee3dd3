"""Slow and idle clients cannot hold the server: raw sockets against a real uvicorn server
run as ``candor serve`` runs it (``service.server.serve``: the header timeout, the
connection cap, keep-alive) with ``create_app`` on the fake engine (the request guard's
body timeout), in a subprocess. Small timeouts (1 s) keep the tests fast.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, spawn, wait_ready

REPO = Path(__file__).resolve().parents[2]

SERVER = """
import json, sys
from service.config import Settings
from service.main import create_app
from service.server import serve
from tests.fakes import FakeEmbedder, FakeEngine
s = Settings(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
             decision_log_enabled=False, **json.loads(sys.argv[2]))
serve(create_app(s, engine=FakeEngine(), embedder=FakeEmbedder()), s)
"""

HALF_HEADERS = b"POST /v1/answer HTTP/1.1\r\nHost: candor\r\nContent-Ty"
QUESTION = json.dumps({"question": "What is 2 + 2?"}).encode()


class Server:
    def __init__(self, **settings: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = spawn(SERVER, str(self.port), json.dumps(settings))
        if not wait_ready(self.url):
            self.stop()
            raise RuntimeError("server did not start")

    def connect(self, first: bytes = b"") -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if first:
            sock.sendall(first)
        return sock

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def fast() -> Iterator[Server]:
    """1 s for the headers and for the body, the default connection cap."""
    server = Server(header_timeout_s=1, body_timeout_s=1)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def capped() -> Iterator[Server]:
    """16 connections at most; timeouts long enough not to interfere."""
    server = Server(max_connections=16, header_timeout_s=60, body_timeout_s=60)
    yield server
    server.stop()


def closed_after(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closes ``sock`` (reads what it sends first); None if it is
    still open after ``timeout``."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < timeout:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - t0
    return None


def closed(socks: list[socket.socket], wait: float = 0.3) -> list[bool]:
    """Which of ``socks`` (half-sent requests: the server sends them nothing) the server
    has closed, ``wait`` seconds from now."""
    time.sleep(wait)
    readable, _, _ = select.select(socks, [], [], 0)
    out = []
    for s in socks:
        if s not in readable:
            out.append(False)
            continue
        try:
            out.append(s.recv(65536) == b"")
        except ConnectionResetError:
            out.append(True)
    return out


def read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def test_half_sent_headers_are_closed_after_the_header_timeout(fast: Server) -> None:
    t0 = time.monotonic()
    half = fast.connect(HALF_HEADERS)
    silent = fast.connect()  # connects, sends nothing
    try:
        took = closed_after(half, 1 + 2)
        assert took is not None, "a half-sent request is still open 3 s after its headers " \
                                 "were due (header_timeout_s=1)"
        assert 0.8 < took < 3, took
        assert closed_after(silent, 1) is not None, "a silent connection is still open"
        assert time.monotonic() - t0 < 4
    finally:
        half.close()
        silent.close()


def test_the_header_timeout_covers_later_requests_on_a_kept_alive_connection(
        fast: Server) -> None:
    sock = fast.connect(b"GET /healthz HTTP/1.1\r\nHost: candor\r\n\r\n")
    try:
        status, headers, _ = read_response(sock, 5)
        assert status == 200 and headers.get("connection") != "close"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # the next request, half of it
        assert closed_after(sock, 1 + 2) is not None
    finally:
        sock.close()


def test_a_short_body_is_answered_408_in_the_error_shape(fast: Server) -> None:
    sock = fast.connect(b"POST /v1/answer HTTP/1.1\r\nHost: candor\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                        + b'{"question"')  # 11 of the 100 bytes promised
    t0 = time.monotonic()
    try:
        status, headers, body = read_response(sock, 1 + 2)
        took = time.monotonic() - t0
        assert status == 408, body
        assert json.loads(body) == {"error": {
            "type": "request_timeout", "param": "body", "code": 408,
            "message": "request body not complete within body_timeout_s=1 s"}}
        assert headers["connection"] == "close"
        assert 0.8 < took < 3, took
        assert closed_after(sock, 2) is not None  # the rest is never read as a request
    finally:
        sock.close()
    r = httpx.get(f"{fast.url}/metrics")
    assert 'candor_errors_total{status="408"} 1.0' in r.text


def test_many_idle_sockets_do_not_stop_a_request_and_are_all_closed(fast: Server) -> None:
    """400 half-sent requests: a normal request is served at once, and none of the 400
    is still open 2 s later (header_timeout_s=1)."""
    n = 400
    socks = [fast.connect(HALF_HEADERS) for _ in range(n)]
    try:
        t0 = time.monotonic()
        r = httpx.post(f"{fast.url}/v1/answer", json={"question": "What is 2 + 2?"},
                       timeout=10)
        served_s = time.monotonic() - t0
        assert r.status_code == 200, r.text
        assert served_s < 1, served_s  # not after the idle ones were dropped
        still_open = closed(socks, max(0.0, 1 + 1 - (time.monotonic() - t0))).count(False)
        print("SLOW_CLIENTS_REPORT " + json.dumps({
            "half_header_sockets": n, "header_timeout_s": 1, "request_served_s":
            round(served_s, 3), "open_after_timeout_plus_1s": still_open}))
        assert still_open == 0
    finally:
        for s in socks:
            s.close()


def test_the_connection_cap_closes_the_oldest_idle_connections(capped: Server) -> None:
    """16 connections at most: 40 idle half-sent requests leave 15 open (the newest) and
    a normal request is served at once (uvicorn's limit_concurrency would answer it 503)."""
    socks = [capped.connect(HALF_HEADERS) for _ in range(40)]
    try:
        time.sleep(0.3)
        with httpx.Client(timeout=10) as c:
            assert c.get(f"{capped.url}/healthz").status_code == 200
        open_now = [not c for c in closed(socks)]
        assert sum(open_now) <= 16, sum(open_now)
        assert not any(open_now[:20]), "the oldest idle connections should go first"
        assert all(open_now[-10:]), "the newest idle connections should stay"
    finally:
        for s in socks:
            s.close()


def test_when_every_connection_is_busy_a_new_request_gets_503(capped: Server) -> None:
    """16 connections uploading their bodies (busy, not idle) fill the cap: the next
    request is answered 503 overloaded_error with Retry-After; once they finish, 200."""
    head = (b"POST /v1/answer HTTP/1.1\r\nHost: candor\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(QUESTION))
    busy = [capped.connect(head + QUESTION[:5]) for _ in range(16)]
    try:
        time.sleep(0.3)
        extra = capped.connect(b"GET /healthz HTTP/1.1\r\nHost: candor\r\n\r\n")
        status, headers, body = read_response(extra, 5)
        assert status == 503, body
        assert json.loads(body)["error"]["type"] == "overloaded_error"
        assert headers["retry-after"] == "1" and headers["connection"] == "close"
        extra.close()
        for s in busy:
            s.sendall(QUESTION[5:])
        assert all(read_response(s, 10)[0] == 200 for s in busy)
    finally:
        for s in busy:
            s.close()
    assert httpx.get(f"{capped.url}/healthz", timeout=5).status_code == 200


def test_idle_connections_outlive_the_clients_own_pools() -> None:
    """A client reuses a pooled connection until its own idle expiry. A server that closes
    idle connections at that same moment (uvicorn's 5 s against httpx's 5 s) now and then
    gets a request on a connection it is closing, and the request is lost (1 of 72 in the
    load benchmark's overload phase). So Candor keeps idle connections longer than httpx,
    the OpenAI SDK and a proxy's 60 s, and its own pool to vLLM lets them go before
    vLLM's 5 s keep-alive does."""
    import openai

    from service.config import Settings
    from service.engine.openai_remote import KEEPALIVE_EXPIRY_S

    clients = (httpx.Limits().keepalive_expiry, openai.DEFAULT_CONNECTION_LIMITS.keepalive_expiry,
               60.0)
    assert all(c is not None and Settings().keep_alive_s > c for c in clients), clients
    assert KEEPALIVE_EXPIRY_S < 5  # vLLM's VLLM_HTTP_TIMEOUT_KEEP_ALIVE default
