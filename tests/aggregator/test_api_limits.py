"""The API's limits on a real uvicorn server over real sockets on 127.0.0.1: a write is authenticated before its
body is read, bodies are capped and timed, request headers have a deadline, connections are bounded and idle ones
make room, and a token shorter than 16 characters counts as none."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.interfaces.api.connections import ConnectionLimits
from aggregator.interfaces.api.guard import MIN_TOKEN_LENGTH, is_loopback
from aggregator.service import Service
from aggregator.settings import load_settings
from tests.conftest import free_port

TOKEN = "limits-test-token-0123456789"
POST_HEAD = (
    "POST /api/v1/rebalance HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    "Content-Length: {length}\r\n{extra}\r\n"
)


@contextmanager
def serving(
    config: Path,
    token: str | None = TOKEN,
    limits: ConnectionLimits = ConnectionLimits(),  # noqa: B008 - frozen
    **app_limits: Any,
) -> Iterator[tuple[int, Path, ApiServer]]:
    """A real API server on a free port over the demo config: (port, database file, server)."""
    settings = load_settings(config)
    db = Path(settings.database.url.removeprefix("sqlite:///"))
    metrics = Metrics()
    app = create_app(
        Service(settings, metrics=metrics), metrics, None if token is None else SecretStr(token), **app_limits
    )
    server = ApiServer(app, "127.0.0.1", free_port(), limits=limits)
    server.start()
    try:
        yield server.port, db, server
    finally:
        server.stop()


def proposals(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("select count(*) from proposals").fetchone()[0])


def exchange(port: int, data: bytes, timeout: float = 20.0) -> tuple[bytes, float]:
    """Send `data`, then read until the server closes the connection: (everything read, seconds it took)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_to_close(sock), time.monotonic() - start


def read_to_close(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


@pytest.mark.parametrize(
    ("token", "extra", "status"),
    [
        (TOKEN, "", b"401"),
        (TOKEN, "Authorization: Bearer wrong-token-0123456789\r\n", b"401"),
        (None, f"Authorization: Bearer {TOKEN}\r\n", b"403"),
    ],
)
def test_a_write_is_refused_from_its_headers_before_its_body_is_read(
    demo_config: Callable[..., Path], token: str | None, extra: str, status: bytes
) -> None:
    """Headers announcing a 100 MB body and no body at all: the refusal comes back at once and the connection is
    closed (before, the server waited for the 100 MB to parse them first)."""
    with capture_logs() as logs, serving(demo_config(), token) as (port, db, _):
        head = POST_HEAD.format(length=100 * 1024 * 1024, extra=extra).encode()
        answer, seconds = exchange(port, head)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
        assert seconds < 5, f"answered after {seconds:.1f} s"
        assert b"AGGREGATOR_API__TOKEN" in answer
        assert proposals(db) == 0
    refused = events(logs, "api_write_refused")
    assert refused and refused[0]["status"] == int(status) and refused[0]["path"] == "/api/v1/rebalance"
    assert TOKEN not in str(logs)


def test_a_refused_small_write_keeps_the_connection_for_the_next_request(
    demo_config: Callable[..., Path],
) -> None:
    """A refused write whose declared body is within the cap: 401 without `connection: close`, its body dropped by
    the server, and the next request on the same connection is answered."""
    with serving(demo_config()) as (port, _, _):
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        with sock:
            sock.sendall(POST_HEAD.format(length=16, extra="").encode() + b'{"apply": true} ')
            first = b""
            while b"Bearer" not in first or not first.endswith(b"}"):
                first += sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 401") and b"connection: close" not in first.lower()
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            second = b""
            while not second.endswith(b"}"):
                second += sock.recv(65536)
            assert second.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in second


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_authenticated_body_past_the_cap_gets_413_and_runs_nothing(
    demo_config: Callable[..., Path], chunked: bool
) -> None:
    """A valid request padded with 100 KB of blanks (valid JSON, so it used to run a rebalance): 413 naming
    api.max_body_bytes, nothing proposed; declared or streamed in chunks alike."""
    body = b'{"apply": false}' + b" " * 100_000
    with capture_logs() as logs, serving(demo_config()) as (port, db, _):
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        content: bytes | Iterator[bytes] = (
            iter([body[i : i + 8192] for i in range(0, len(body), 8192)]) if chunked else body
        )
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/rebalance", content=content, headers=headers, timeout=30
        )
        assert response.status_code == 413
        assert "api.max_body_bytes" in response.json()["detail"]
        assert proposals(db) == 0
        ok = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/rebalance", json={"apply": False}, headers=headers, timeout=60
        )
        assert ok.status_code == 200 and proposals(db) == 1  # a normal body still goes through
    assert events(logs, "api_body_too_large")[0]["limit"] == 64 * 1024


def test_a_body_that_does_not_arrive_in_time_gets_408(demo_config: Callable[..., Path]) -> None:
    """An authenticated write that sends 5 of its 40 announced bytes and stalls is answered 408 and closed
    within body_timeout_seconds."""
    with capture_logs() as logs, serving(demo_config(), body_timeout_seconds=1.0) as (port, db, _):
        head = POST_HEAD.format(length=40, extra=f"Authorization: Bearer {TOKEN}\r\n").encode()
        answer, seconds = exchange(port, head + b'{"app')
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert 0.9 <= seconds < 6, seconds
        assert proposals(db) == 0
    assert events(logs, "api_body_timeout")


@pytest.mark.parametrize("keep_alive", [False, True], ids=["new-connection", "after-a-response"])
def test_slowly_dripped_headers_are_cut_off_at_the_header_deadline(
    demo_config: Callable[..., Path], keep_alive: bool
) -> None:
    """A slow-loris client sending one header byte every 0.2 s is answered 408 and disconnected once
    header_timeout_seconds (1 s) have passed since the connection opened (or since its last response), though it
    never stops sending. Before, it was held for as long as it kept dripping."""
    limits = ConnectionLimits(header_timeout_seconds=1.0, keep_alive_seconds=30)
    with capture_logs() as logs, serving(demo_config(), limits=limits) as (port, _, _):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            if keep_alive:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                first = b""
                while not first.endswith(b"}"):  # the whole JSON answer
                    first += sock.recv(65536)
                assert first.startswith(b"HTTP/1.1 200")
            start = time.monotonic()
            sock.sendall(b"GET /health HTTP/1.1\r\n")
            answer = b""
            deadline = start + 15
            sock.settimeout(0.2)
            while time.monotonic() < deadline:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    try:
                        sock.sendall(b"X")
                    except OSError:
                        break
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                answer += chunk
            seconds = time.monotonic() - start
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert 0.8 <= seconds < 6, f"cut off after {seconds:.1f} s"
    timed_out = events(logs, "api_connection_timed_out")
    assert timed_out and timed_out[0]["phase"] == "headers"


def test_a_connection_that_never_sends_a_request_is_closed(demo_config: Callable[..., Path]) -> None:
    """A connection that sends nothing is closed at the header deadline (before, it was held forever)."""
    with serving(demo_config(), limits=ConnectionLimits(header_timeout_seconds=0.5)) as (port, _, _):
        sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        with sock:
            start = time.monotonic()
            assert read_to_close(sock) == b""
            assert time.monotonic() - start < 6


def test_idle_connections_past_the_cap_make_room_and_health_answers(demo_config: Callable[..., Path]) -> None:
    """300 idle connections against max_connections = 32: the server holds at most 32 open (the longest idle are
    evicted) and /health still answers at once; each client that then asks gets an answer."""
    limits = ConnectionLimits(max_connections=32, header_timeout_seconds=60, keep_alive_seconds=60)
    idle: list[socket.socket] = []
    with capture_logs() as logs, serving(demo_config(), limits=limits) as (port, _, server):
        try:
            for _ in range(300):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            start = time.monotonic()
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["status"] == "ok"
            assert time.monotonic() - start < 5
            open_ = [c for c in server.server.server_state.connections if not c.transport.is_closing()]
            assert len(open_) <= 32
            evicted = 0
            for sock in idle[:200]:
                sock.settimeout(10)
                evicted += read_to_close(sock) == b""  # closed by the server without a word
            assert evicted == 200
        finally:
            for sock in idle:
                sock.close()
    assert events(logs, "api_connection_evicted")[0]["max_connections"] == 32


def test_connections_all_busy_get_503(demo_config: Callable[..., Path]) -> None:
    """When every one of max_connections connections has a request in progress, a new one gets 503 at once
    instead of waiting (a request in progress is never evicted)."""
    limits = ConnectionLimits(max_connections=4, header_timeout_seconds=60)
    held: list[socket.socket] = []
    with (
        capture_logs() as logs,
        serving(demo_config(), limits=limits, body_timeout_seconds=60) as (port, _, server),
    ):
        try:
            for _ in range(4):  # authenticated writes waiting for their body: busy, not idle
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(POST_HEAD.format(length=20, extra=f"Authorization: Bearer {TOKEN}\r\n").encode())
                held.append(sock)
            registry = server.server.config.http.registry  # type: ignore[union-attr]
            deadline = time.monotonic() + 30
            while (
                len(registry.open) - len(registry.idle) < 4
            ):  # the server has parsed the four requests' headers
                assert time.monotonic() < deadline, "the four requests never became busy"
                time.sleep(0.01)
            answer, seconds = exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 503") and b"api.max_connections" in answer
            assert seconds < 5
        finally:
            for sock in held:
                sock.close()
    assert events(logs, "api_connection_refused")


@pytest.mark.parametrize(
    ("token", "event"),
    [("", "api_token_missing"), ("   ", "api_token_missing"), ("fifteen-chars!!", "api_token_too_short")],
)
def test_an_empty_or_short_token_counts_as_none(
    demo_config: Callable[..., Path], token: str, event: str
) -> None:
    """An empty, blank or 15-character token disables writes (403), even for a request that sends exactly that
    token or no header at all (an empty token used to match an absent one); the reason is logged, the token
    never."""
    assert len("fifteen-chars!!") == MIN_TOKEN_LENGTH - 1
    with capture_logs() as logs, serving(demo_config(), token) as (port, db, _):
        for headers in ({}, {"Authorization": f"Bearer {token}".strip()}):
            response = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/rebalance", json={}, headers=headers, timeout=30
            )
            assert response.status_code == 403
            assert "AGGREGATOR_API__TOKEN" in response.json()["detail"]
        assert proposals(db) == 0
    assert [e["min_length"] for e in events(logs, event)] == [MIN_TOKEN_LENGTH]
    if token.strip():
        assert token not in str(logs)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
    ],
)
def test_which_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    """Only addresses that cannot be reached from another machine count as loopback."""
    assert is_loopback(host) is loopback
