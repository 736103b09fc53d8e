"""What the API lets in before any handler runs: the token rules, the bind check, and an ASGI guard that
authenticates a write before its body is read, caps the body and puts a deadline on reading it.

Token rules: `api.token` (from AGGREGATOR_API__TOKEN) counts only with at least MIN_TOKEN_LENGTH characters (not
counting surrounding blanks). An unset, empty or shorter token means "no token": every state change is refused
(403), and the start-up logs `api_token_missing` or `api_token_too_short` (never the token). Without a token the
API may only listen on a loopback address (`check_exposure`): anything else is a configuration error.

Everything an outside client can trigger is logged through `Throttled`: the first occurrence at once, then at most
one line per event per THROTTLE_SECONDS with the count, so a flood cannot flood the log.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggregator.core.errors import ConfigError

log = structlog.get_logger(__name__)

MIN_TOKEN_LENGTH = 16
TOKEN_ENV = "AGGREGATOR_API__TOKEN"
THROTTLE_SECONDS = 10.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


HOW_TO_SET = (
    f"set {TOKEN_ENV} to a random secret of at least {MIN_TOKEN_LENGTH} characters "
    "(e.g. `openssl rand -hex 32`) and restart the daemon"
)


def token_problem(token: SecretStr | None) -> str | None:
    """Why `token` does not count as a token (`api_token_missing`, `api_token_too_short`), or None if it does."""
    if token is None or not token.get_secret_value().strip():
        return "api_token_missing"
    if len(token.get_secret_value().strip()) < MIN_TOKEN_LENGTH:
        return "api_token_too_short"
    return None


def usable_token(token: SecretStr | None) -> SecretStr | None:
    """The token (without surrounding blanks) if it counts (see `token_problem`), else None; logs why not, never
    the token itself."""
    problem = token_problem(token)
    if problem is None and token is not None:
        return SecretStr(token.get_secret_value().strip())
    log.warning(
        problem,
        effect="state changes over HTTP are refused (403)",
        min_length=MIN_TOKEN_LENGTH,
        fix=HOW_TO_SET,
    )
    return None


def is_loopback(host: str) -> bool:
    """True if every address `host` names is a loopback address (127.0.0.0/8, ::1; `localhost` resolved).
    An empty host, 0.0.0.0, ::, a LAN address or a name that does not resolve is not loopback."""
    if not host.strip():
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def check_exposure(host: str, token: SecretStr | None) -> None:
    """Refuse (ConfigError) to serve the API on a non-loopback address without a usable token."""
    problem = token_problem(token)
    if problem is None or is_loopback(host):
        return
    why = "is not set" if problem == "api_token_missing" else f"is shorter than {MIN_TOKEN_LENGTH} characters"
    raise ConfigError(
        f"api.host = {host!r} is not a loopback address, and the API token ({TOKEN_ENV}, api.token) {why}: "
        f"anyone who can reach the port could trigger rebalances. Either {HOW_TO_SET}, or listen on a loopback "
        "address (api.host = '127.0.0.1' or '::1'), or disable the API (api.enabled = false)"
    )


class Throttled:
    """Log one event at most once per `every` seconds (the first at once), with how many happened since."""

    def __init__(self, every: float = THROTTLE_SECONDS) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()  # the API's worker threads log through it too

    def warning(self, event: str, **fields: Any) -> None:
        now = time.monotonic()
        with self._lock:
            self._count[event] = self._count.get(event, 0) + 1
            last = self._last.get(event)
            if last is not None and now - last < self.every:
                return
            self._last[event] = now
            count = self._count.pop(event)
        log.warning(event, count=count, **fields)


async def send_json(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = (), *, close: bool = True
) -> None:
    """A complete JSON error response (`{"detail": ...}`, like every API error), by default closing the
    connection so an unread request body is never drained."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *([(b"connection", b"close")] if close else []),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class WriteGuard:
    """ASGI middleware in front of the app.

    - A request declaring a body larger than `max_body_bytes` gets 413 at once (nothing of it is read).
    - A write (`is_write(method, path)`) is authenticated from its headers alone before any of its body is read:
      403 while no usable token is configured, 401 for a missing or wrong bearer token; both close the connection
      unless the body is declared and within the cap (then the server drops it as it arrives, and the connection
      stays open for the client's next request).
    - An authenticated write's body is read here, up to `max_body_bytes` (413 past it, chunked or not) and within
      `body_timeout_seconds` (408 past it), then handed to the app.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: SecretStr | None,
        is_write: Callable[[str, str], bool],
        *,
        max_body_bytes: int,
        body_timeout_seconds: float,
    ) -> None:
        self.app = app
        self.secret = token.get_secret_value().strip().encode() if token is not None else None
        self.is_write = is_write
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self.throttled = Throttled()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = str(scope["method"]).upper(), str(scope["path"])
        headers = {k.lower(): v for k, v in scope["headers"]}
        write = method not in SAFE_METHODS and self.is_write(method, path)
        raw_length = headers.get(b"content-length", b"").strip()
        declared = int(raw_length) if raw_length.isdigit() else None
        if write:
            refusal = self._refusal(headers.get(b"authorization", b""))
            if refusal is not None:
                status, detail, extra = refusal
                self.throttled.warning("api_write_refused", status=status, method=method, path=path)
                small = declared is not None and declared <= self.max_body_bytes
                await send_json(send, status, detail, extra, close=not small)
                return
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(send, method, path, declared)
            return
        if not write:
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.body_timeout_seconds):
                body = await self._read_body(receive)
        except TimeoutError:
            self.throttled.warning(
                "api_body_timeout", method=method, path=path, timeout_seconds=self.body_timeout_seconds
            )
            await send_json(
                send,
                408,
                f"the request body did not arrive within {self.body_timeout_seconds:g} s "
                "(api.body_timeout_seconds)",
            )
            return
        if body is None:
            await self._too_large(send, method, path, None)
            return
        if not isinstance(body, bytes):  # the client went away
            return
        await self.app(scope, _replay(body, receive), send)

    def _refusal(self, given: bytes) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        if self.secret is None:
            return (
                403,
                "state changes are disabled: no API token is configured (api.token is unset, empty or shorter "
                f"than {MIN_TOKEN_LENGTH} characters); {HOW_TO_SET}",
                [],
            )
        scheme, _, credentials = given.strip().partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(credentials.strip(), self.secret):
            return (
                401,
                f"a valid bearer token is required: send `Authorization: Bearer <the {TOKEN_ENV} value>`",
                [(b"www-authenticate", b"Bearer")],
            )
        return None

    async def _read_body(self, receive: Receive) -> bytes | Message | None:
        """The whole body; None past the cap; the disconnect message if the client left."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return message
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Send, method: str, path: str, declared: int | None) -> None:
        self.throttled.warning(
            "api_body_too_large", method=method, path=path, declared=declared, limit=self.max_body_bytes
        )
        await send_json(
            send,
            413,
            f"the request body is larger than {self.max_body_bytes} bytes (api.max_body_bytes); "
            'a rebalance request is a small JSON object such as {"apply": false}',
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the app the body already read, then whatever the server says next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
