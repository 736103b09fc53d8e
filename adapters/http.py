"""HTTP for adapters: JSON over GET or POST with per-request timeouts and bounded retries.

Retried: timeouts, connection errors, 429 (waiting what `Retry-After` says, capped) and 5xx, with exponential backoff
and full jitter. Not retried: other 4xx and anything that is not the JSON we expect. httpx errors never leave here.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from adapters.base import SourceSettings
from adapters.errors import SourceDataError, TemporarySourceError

Sleep = Callable[[float], Awaitable[None]]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        date = response.headers.get("date")
        now = parsedate_to_datetime(date) if date else None
        return max(0.0, (when - now).total_seconds()) if now else None


async def _once(
    client: httpx.AsyncClient, source: str, url: str, *, method: str, body: Any, timeout: float
) -> Any:
    """One request: the parsed JSON, or a source error (a 429 carries its Retry-After)."""
    try:
        response = await client.request(method, url, json=body, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise TemporarySourceError(source, f"timeout after {timeout:g}s: {url}") from exc
    except httpx.TransportError as exc:
        raise TemporarySourceError(source, f"connection failed: {type(exc).__name__}: {url}") from exc
    if response.status_code == 429:
        err = TemporarySourceError(source, f"HTTP 429 (rate limited) from {url}")
        err.retry_after = _retry_after(response)
        raise err
    if response.status_code >= 500:
        raise TemporarySourceError(source, f"HTTP {response.status_code} from {url}")
    if response.status_code >= 400:
        raise SourceDataError(source, f"HTTP {response.status_code} from {url}")
    ctype = response.headers.get("content-type", "")
    if "json" not in ctype.lower():
        raise SourceDataError(source, f"expected JSON, got content-type {ctype or 'none'!r}: {url}")
    try:
        return response.json()
    except ValueError as exc:
        raise SourceDataError(
            source, f"body is not valid JSON ({len(response.content)} bytes): {url}"
        ) from exc


async def request_json(
    client: httpx.AsyncClient,
    source: str,
    url: str,
    settings: SourceSettings,
    *,
    method: str = "GET",
    body: Any = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> Any:
    """The JSON at `url`, retrying temporary failures up to `settings.max_attempts` times in all."""
    jitter = rng or random.Random()
    for attempt in range(1, settings.max_attempts + 1):
        try:
            return await _once(
                client, source, url, method=method, body=body, timeout=settings.timeout_seconds
            )
        except TemporarySourceError as exc:
            if attempt == settings.max_attempts:
                exc.reason += f" (after {attempt} attempts)"
                raise
            backoff = min(settings.backoff_max_seconds, settings.backoff_base_seconds * 2 ** (attempt - 1))
            wait = jitter.uniform(0.0, backoff)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                if retry_after > settings.max_retry_after_seconds:
                    exc.reason += (
                        f" (Retry-After {retry_after:g}s exceeds {settings.max_retry_after_seconds:g}s)"
                    )
                    raise
                wait = max(wait, retry_after)
            await sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


async def get_json(client: httpx.AsyncClient, source: str, url: str, settings: SourceSettings) -> Any:
    """GET with the source's retry policy."""
    return await request_json(client, source, url, settings)
