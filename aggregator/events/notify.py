"""Webhook notification of each proposal: a JSON POST from a background worker, with retries, that never blocks
or fails a cycle. Delivery is best effort: a proposal is in the store whether or not the webhook heard of it.

Every delivery has a total deadline (`deadline_seconds`, attempts and back-off included): a receiver that accepts
the connection and never answers, or drips its answer a byte at a time, holds the worker that long at most, so
later proposals are not stalled behind it. Each delivery ends in one log line: `notify_sent`, or `notify_failed`
with the reason (the deadline passed, the attempts ran out, the receiver refused it, or the process stopped).

`close(timeout)` flushes: what is queued is still tried until `timeout` has passed (a CLI rebalance whose first
attempt fails is retried), then whatever is left is logged as `notify_failed` and the worker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from typing import Any

import httpx
import structlog

from aggregator.events.logs import asyncio_exception_handler
from aggregator.settings.notify import NotifySettings

log = structlog.get_logger(__name__)


class Notifier:
    """Queue proposals and deliver them on a worker thread."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._closing = threading.Event()
        self._cutoff = float("inf")  # monotonic time after which nothing more is tried (set by close)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = (
            None  # the worker's; close() wakes an attempt in flight
        )
        self._wake: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._work, name="notify", daemon=True)
        self._thread.start()

    def send(self, payload: dict[str, Any]) -> None:
        """Never blocks: a full queue (or a closed notifier) drops the message with a log line."""
        if self._closing.is_set():
            log.warning("notify_dropped", reason="notifier closed", proposal=payload.get("proposal"))
            return
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            log.warning("notify_dropped", reason="queue full", proposal=payload.get("proposal"))

    def close(self, timeout: float | None = None) -> bool:
        """Deliver what is queued for up to `timeout` seconds (default `deadline_seconds`), then give the rest up
        with `notify_failed`. True when the worker finished in time."""
        wait = self.settings.deadline_seconds if timeout is None else timeout
        if not self._closing.is_set():
            with self._lock:
                self._cutoff = time.monotonic() + wait
                self._closing.set()
                if (
                    self._loop is not None and self._wake is not None
                ):  # an attempt in flight ends at the cutoff
                    self._loop.call_soon_threadsafe(self._wake.set)
            with contextlib.suppress(queue.Full):  # the worker sees `_closing` once the queue is drained
                self._queue.put_nowait(None)
        self._thread.join(wait + 2.0)  # past the cutoff the worker only logs what is left
        return not self._thread.is_alive()

    def _work(self) -> None:
        assert self.settings.webhook_url is not None
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(asyncio_exception_handler)
        with self._lock:
            self._loop, self._wake = loop, asyncio.Event()
        client = httpx.AsyncClient(timeout=self.settings.timeout_seconds)
        try:
            while True:
                if self._closing.is_set() and self._queue.empty():
                    break
                payload = self._queue.get()
                if payload is None:
                    break
                self._deliver(loop, client, self.settings.webhook_url, payload)
        finally:
            with self._lock:
                self._loop = None
            loop.run_until_complete(client.aclose())
            loop.close()

    async def _attempt(
        self, client: httpx.AsyncClient, url: str, payload: dict[str, Any], end: float
    ) -> httpx.Response:
        """One POST, cancelled at `end` or at the close cutoff, whichever comes first (TimeoutError)."""
        assert self._wake is not None
        post = asyncio.ensure_future(client.post(url, json=payload))
        woken = self._wake.is_set()
        try:
            while True:
                limit = min(end, self._cutoff) - time.monotonic()
                if limit <= 0:
                    raise TimeoutError
                wake = None if woken else asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait(
                    {post} if wake is None else {post, wake},
                    timeout=limit,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if wake is not None:
                    wake.cancel()
                    woken = wake in done  # close() came: the cutoff is known now, recompute the limit
                if post in done:
                    return post.result()
        finally:
            if not post.done():
                post.cancel()
                with contextlib.suppress(BaseException):
                    await post

    def _deliver(
        self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient, url: str, payload: dict[str, Any]
    ) -> None:
        s = self.settings
        started = time.monotonic()
        deadline = started + s.deadline_seconds
        proposal = payload.get("proposal")
        attempt, last = 0, "not tried"
        while attempt < s.max_attempts:
            left = min(deadline, self._cutoff) - time.monotonic()
            if left <= 0:
                break
            attempt += 1
            began = time.monotonic()
            try:
                response = loop.run_until_complete(
                    self._attempt(client, url, payload, min(began + s.timeout_seconds, deadline))
                )
            except TimeoutError:
                last = f"no answer within {time.monotonic() - began:.1f}s"
            except Exception as exc:  # any failure of one attempt (httpx, a bad URL, the OS) is retried
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code < 300:
                    log.info("notify_sent", proposal=proposal, attempts=attempt)
                    return
                last = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    self._failed(proposal, attempt, started, f"refused by the receiver ({last})")
                    return  # the receiver refuses this message; retrying will not help
            if attempt < s.max_attempts:
                self._pause(s.backoff_seconds * 2 ** (attempt - 1), deadline)
        now = time.monotonic()
        if now >= deadline:
            why = f"deadline_seconds={s.deadline_seconds:g} passed after {attempt} attempt(s) (last: {last})"
        elif now >= self._cutoff:
            why = f"the process is stopping; not delivered after {attempt} attempt(s) (last: {last})"
        else:
            why = f"{attempt} attempts failed (last: {last})"
        self._failed(proposal, attempt, started, why)

    def _pause(self, seconds: float, deadline: float) -> None:
        """Back off `seconds`, never past the delivery's deadline or the close cutoff (which may come sooner)."""
        end = time.monotonic() + seconds
        if not self._closing.is_set():
            self._closing.wait(max(0.0, min(end, deadline) - time.monotonic()))
        left = min(end, deadline, self._cutoff) - time.monotonic()
        if left > 0:
            time.sleep(left)

    @staticmethod
    def _failed(proposal: object, attempts: int, started: float, reason: str) -> None:
        log.warning(
            "notify_failed",
            proposal=proposal,
            attempts=attempts,
            seconds=round(time.monotonic() - started, 3),
            reason=reason,
        )
