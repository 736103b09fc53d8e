"""Webhook notification of each proposal: a JSON POST from a background worker, with retries, that never blocks
or fails a cycle. Delivery is best effort: a proposal is in the store whether or not the webhook heard of it."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field

log = structlog.get_logger(__name__)


class NotifySettings(BaseModel):
    """`[notify]` in the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhook_url: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_seconds: float = Field(default=2.0, ge=0, le=300)


class Notifier:
    """Queue proposals and deliver them on a worker thread."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._work, name="notify", daemon=True)
        self._thread.start()

    def send(self, payload: dict[str, Any]) -> None:
        """Never blocks: a full queue drops the message with a log line."""
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            log.warning("notify_dropped", reason="queue full", proposal=payload.get("proposal"))

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _work(self) -> None:
        assert self.settings.webhook_url is not None
        with httpx.Client(timeout=self.settings.timeout_seconds) as client:
            while (payload := self._queue.get()) is not None:
                self._deliver(client, self.settings.webhook_url, payload)

    def _deliver(self, client: httpx.Client, url: str, payload: dict[str, Any]) -> None:
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                response = client.post(url, json=payload)
                if response.status_code < 300:
                    log.info("notify_sent", proposal=payload.get("proposal"), attempts=attempt)
                    return
                reason = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    break  # the receiver refuses this message; retrying will not help
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}"
            time.sleep(self.settings.backoff_seconds * 2 ** (attempt - 1))
        log.warning("notify_failed", proposal=payload.get("proposal"), attempts=attempt, reason=reason)
