"""Connection-level limits of the API server, below HTTP handling: a bounded number of open connections, a deadline
for a request's headers, and the process's file-descriptor budget.

uvicorn alone keeps a connection that never sends a request open forever, restarts no clock while headers drip in
(a keep-alive connection's timer is cancelled by the first byte), and accepts connections until the process runs
out of file descriptors (EMFILE), which then fails the daemon's own cycles. `guarded_protocol` is uvicorn's h11
protocol with:

- a header deadline: from the moment a connection opens (or its previous response completes) the next request's
  headers must be complete within `header_timeout_seconds`, however the bytes are spaced; past it the connection
  gets 408 and is closed (`api_connection_timed_out`, phase `headers`; a connection that sent nothing is closed
  silently as idle);
- a connection cap: past `max_connections` open connections, the connection that has waited longest without a
  request in progress is closed to make room (`api_connection_evicted`), so idle or slow clients can never keep
  `/health` out; when every connection has a request in progress the new one gets 503 (`api_connection_refused`).

uvicorn's `timeout_keep_alive` still closes an idle keep-alive connection after `keep_alive_seconds`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

from aggregator.interfaces.api.guard import Throttled

log = structlog.get_logger(__name__)
FD_TARGET = 65536  # the soft RLIMIT_NOFILE the daemon asks for (within the hard limit)
REFUSED_LINGER_SECONDS = 0.5
# The listen backlog, which is also how many connections asyncio accepts in one go before any of them can be
# evicted: the descriptors in use can pass max_connections by about twice this during a flood.
ACCEPT_BACKLOG = 128
FD_RESERVE = (
    256 + 2 * ACCEPT_BACKLOG
)  # descriptors kept for the daemon's own work (database, sources, logs) beside the API's


@dataclass(frozen=True)
class ConnectionLimits:
    """See the module docstring; the defaults are those of `[api]` in the settings."""

    max_connections: int = 256
    header_timeout_seconds: float = 10.0
    keep_alive_seconds: int = 5


def _raw_response(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Registry:
    """The open connections of one server, and the idle ones (no request in progress) oldest first: finding the
    connection to evict is O(1), which matters when a flood of connections arrives at once."""

    def __init__(self) -> None:
        self.open: set[GuardedH11Protocol] = set()
        self.idle: dict[GuardedH11Protocol, float] = {}  # insertion order: when each became idle

    def forget(self, conn: GuardedH11Protocol) -> None:
        self.open.discard(conn)
        self.idle.pop(conn, None)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a connection cap (see the module docstring)."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    throttled: ClassVar[Throttled] = Throttled()
    registry: ClassVar[_Registry] = _Registry()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._partial = False  # bytes of the next request have arrived
        self._refused = False  # answered 503 at connect: what it sends is read and dropped until it is closed

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.registry.open.add(self)
        self._await_request()
        if len(self.registry.open) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.registry.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._deadline is not None:
            self._partial = True
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers are complete: the app has it now, it is busy
            self._disarm()
            self.registry.idle.pop(self, None)

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._await_request()  # before uvicorn handles a pipelined request, which makes it busy again
        super().on_response_complete()

    def _await_request(self) -> None:
        self._disarm()
        self._partial = False
        self.registry.idle.pop(self, None)
        self.registry.idle[self] = time.monotonic()
        self._deadline = self.loop.call_later(self.limits.header_timeout_seconds, self._header_timeout)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _close(self) -> None:
        self._disarm()
        self.registry.forget(self)
        self.transport.close()

    def _header_timeout(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._partial:
            self.throttled.warning(
                "api_connection_timed_out",
                phase="headers",
                timeout_seconds=self.limits.header_timeout_seconds,
                client=self.client[0] if self.client else None,
            )
            self.transport.write(
                _raw_response(
                    408,
                    "Request Timeout",
                    f"the request headers did not arrive within {self.limits.header_timeout_seconds:g} s",
                )
            )
        self._close()

    def _make_room(self) -> None:
        idle = self.registry.idle
        while (victim := next((c for c in idle if c is not self), None)) is not None:
            if victim.transport.is_closing():  # closed by uvicorn, its connection_lost still to come
                self.registry.forget(victim)
                continue
            self.throttled.warning(
                "api_connection_evicted",
                open=len(self.registry.open),
                max_connections=self.limits.max_connections,
                idle_seconds=round(time.monotonic() - idle[victim], 3),
            )
            victim._close()
            return
        self.throttled.warning(
            "api_connection_refused",
            open=len(self.registry.open),
            max_connections=self.limits.max_connections,
        )
        self._disarm()
        self._refused = True
        self.transport.write(
            _raw_response(
                503,
                "Service Unavailable",
                f"{self.limits.max_connections} connections are busy (api.max_connections); retry shortly",
            )
        )
        # Closed a moment later, its request read meanwhile: closing on unread bytes would reset the connection
        # and the client could lose the 503. Until then it counts as open and idle, so it is the first evicted.
        self.loop.call_later(REFUSED_LINGER_SECONDS, self._close)


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class for one server: its limits, its connections and its own log throttle."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {"limits": limits, "throttled": Throttled(), "registry": _Registry(), "__module__": __name__},
    )


def raise_fd_limit(max_connections: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards FD_TARGET within the hard limit, so the API's connections and the
    daemon's own files and sockets fit together; return the connection cap that leaves FD_RESERVE descriptors
    for the daemon (lower than `max_connections` only on a very small limit, logged `api_max_connections_lowered`)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FD_TARGET if hard == resource.RLIM_INFINITY else min(FD_TARGET, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("fd_limit_not_raised", soft=soft, hard=hard, error=str(exc))
    budget = max(soft - FD_RESERVE, 1) if soft != resource.RLIM_INFINITY else max_connections
    cap = min(max_connections, budget)
    if cap < max_connections:
        log.warning(
            "api_max_connections_lowered",
            configured=max_connections,
            used=cap,
            fd_soft_limit=soft,
            reason=f"{FD_RESERVE} descriptors are kept for the daemon's cycles",
        )
    return cap


class LoopErrors:
    """The API event loop's exception handler: one line per kind of error (the message and the exception,
    without a traceback), throttled; asyncio's default handler writes a whole traceback every time (213 MB
    in 25 s under a connection flood)."""

    def __init__(self) -> None:
        self.throttled = Throttled()

    def __call__(self, _loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.throttled.warning(
            "api_loop_error",
            message=str(context.get("message", "")),
            error=f"{type(exc).__name__}: {exc}" if exc is not None else None,
        )


class ThrottleFilter(logging.Filter):
    """Lets each distinct message of a standard-library logger (uvicorn's) through at most once per window,
    so a client sending garbage cannot fill the log with "Invalid HTTP request received."."""

    def __init__(self, every: float = 10.0) -> None:
        super().__init__()
        self.every = every
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = str(record.msg)
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            return False
        self._last[key] = now
        return True
