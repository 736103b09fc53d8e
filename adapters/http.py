"""HTTP for adapters: JSON over GET or POST with a total deadline, a streamed size cap and bounded retries.

Retried: timeouts, connection errors, 429 (waiting what `Retry-After` says, capped) and 5xx, with exponential backoff
and full jitter. Not retried: other 4xx, a body over the size cap, and anything that is not the JSON we expect.

Bounds, per source (`adapters.base.SourceSettings`):
- `timeout_seconds` is per connect/read; `deadline_seconds` bounds the whole request, retries and waits included, so
  a body dripped one byte at a time or a status line that never ends stops at the deadline;
- `max_response_bytes` caps the body after decompression: it is streamed and decoded here (gzip, deflate) chunk by
  chunk with a bounded output, so an endless chunked body or a gzip bomb stops at the cap without being held;
- `max_json_depth` and `max_json_containers` are checked on the raw bytes before parsing (`check_json_shape`), so
  deeply nested JSON is refused cheaply instead of hitting the interpreter's recursion limit.

httpx errors never leave here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import zlib
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from adapters.base import SourceSettings
from adapters.errors import SourceDataError, TemporarySourceError

Sleep = Callable[[float], Awaitable[None]]

_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = [0] * 256
_DELTA[ord("[")] = _DELTA[ord("{")] = 1
_DELTA[ord("]")] = _DELTA[ord("}")] = -1
_DEPTH_CHUNK = 1 << 16


def check_json_shape(source: str, body: bytes, max_depth: int, max_containers: int, url: str) -> None:
    """Refuse a body nested deeper than `max_depth` or holding more than `max_containers` arrays and objects.

    Linear in the body and in C for most of it: strings are cut out with one regex, everything but brackets is
    deleted, and the depth is a running sum over what is left, stopped at the first chunk that goes too deep.
    Unbalanced brackets are left for the JSON parser to report."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return  # cannot be deeper than it has openings (and far below any container cap)
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    containers = brackets.count(b"[") + brackets.count(b"{")
    if containers > max_containers:
        raise SourceDataError(
            source,
            f"body holds {containers} JSON arrays/objects, more than max_json_containers {max_containers}: {url}",
        )
    depth = 0
    for start in range(0, len(brackets), _DEPTH_CHUNK):
        chunk = brackets[start : start + _DEPTH_CHUNK]
        if max(itertools.accumulate(map(_DELTA.__getitem__, chunk), initial=depth)) > max_depth:
            raise SourceDataError(source, f"JSON nested deeper than max_json_depth {max_depth}: {url}")
        depth += chunk.count(b"[") + chunk.count(b"{") - chunk.count(b"]") - chunk.count(b"}")


class _Decoder:
    """Content-Encoding decoding with a bounded output per step (zlib's `max_length`)."""

    def __init__(self, source: str, encoding: str, url: str) -> None:
        self.source, self.url = source, url
        self.encoding = encoding
        self.raw_deflate = False
        if encoding in ("gzip", "x-gzip", "deflate"):
            self.zlib: Any = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        elif encoding in ("", "identity"):
            self.zlib = None
        else:
            raise SourceDataError(source, f"unsupported Content-Encoding {encoding!r}: {url}")
        self.started = False

    def feed(self, data: bytes, room: int) -> bytes:
        """Up to `room` + 1 decoded bytes of `data` (one more than room means: over the cap)."""
        if self.zlib is None:
            return data[: room + 1]
        out = bytearray()
        while data and len(out) <= room:
            try:
                out += self.zlib.decompress(data, room + 1 - len(out))
            except zlib.error as exc:
                if self.encoding == "deflate" and not self.started and not self.raw_deflate:
                    self.raw_deflate = True  # some servers send raw deflate without the zlib header
                    self.zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise SourceDataError(
                    self.source, f"body is not valid {self.encoding}: {exc}: {self.url}"
                ) from exc
            self.started = True
            data = self.zlib.unconsumed_tail
            if self.zlib.eof:
                break
        return bytes(out)


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


async def _read_capped(response: httpx.Response, source: str, url: str, cap: int) -> bytes:
    """The decoded body, or SourceDataError as soon as it passes `cap` bytes."""
    declared = response.headers.get("content-length")
    encoding = response.headers.get("content-encoding", "").strip().lower()
    too_big = f"response larger than max_response_bytes {cap} (decompressed): {url}"
    if declared and declared.isdigit() and not encoding and int(declared) > cap:
        raise SourceDataError(source, too_big)
    if response.is_stream_consumed:  # built in memory (httpx.MockTransport): nothing left to stream
        if len(response.content) > cap:
            raise SourceDataError(source, too_big)
        return response.content
    decoder = _Decoder(source, encoding, url)
    body = bytearray()
    async for raw in response.aiter_raw():
        body += decoder.feed(raw, cap - len(body))
        if len(body) > cap:
            raise SourceDataError(source, too_big)
    return bytes(body)


async def _once(
    client: httpx.AsyncClient,
    source: str,
    url: str,
    *,
    method: str,
    body: Any,
    settings: SourceSettings,
) -> Any:
    """One request: the parsed JSON, or a source error (a 429 carries its Retry-After)."""
    timeout = settings.timeout_seconds
    try:
        async with client.stream(
            method,
            url,
            json=body,
            timeout=timeout,
            headers={"Accept-Encoding": "gzip, deflate"},
        ) as response:
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
                raise SourceDataError(
                    source, f"expected JSON, got content-type {ctype[:100] or 'none'!r}: {url}"
                )
            content = await _read_capped(response, source, url, settings.max_response_bytes)
    except httpx.TimeoutException as exc:
        raise TemporarySourceError(source, f"timeout after {timeout:g}s: {url}") from exc
    except httpx.TransportError as exc:
        raise TemporarySourceError(source, f"connection failed: {type(exc).__name__}: {url}") from exc
    check_json_shape(source, content, settings.max_json_depth, settings.max_json_containers, url)
    try:
        return json.loads(content)
    except (ValueError, RecursionError) as exc:
        raise SourceDataError(source, f"body is not valid JSON ({len(content)} bytes): {url}") from exc


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
    deadline_at: float | None = None,
) -> Any:
    """The JSON at `url`, retrying temporary failures up to `settings.max_attempts` times in all, everything within
    `settings.deadline_seconds` (or by `deadline_at`, a loop time, when the caller shares one deadline between
    several URLs)."""
    jitter = rng or random.Random()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.deadline_seconds if deadline_at is None else deadline_at
    for attempt in range(1, settings.max_attempts + 1):
        try:
            async with asyncio.timeout_at(deadline):
                return await _once(client, source, url, method=method, body=body, settings=settings)
        except TimeoutError as exc:
            raise TemporarySourceError(
                source,
                f"deadline of {settings.deadline_seconds:g}s exceeded (attempt {attempt}; "
                f"deadline_seconds bounds the whole request): {url}",
            ) from exc
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
            if loop.time() + wait >= deadline:
                exc.reason += (
                    f" (after {attempt} attempts; waiting {wait:g}s more would pass the "
                    f"{settings.deadline_seconds:g}s deadline)"
                )
                raise
            await sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


async def get_json(client: httpx.AsyncClient, source: str, url: str, settings: SourceSettings) -> Any:
    """GET with the source's retry policy."""
    return await request_json(client, source, url, settings)
