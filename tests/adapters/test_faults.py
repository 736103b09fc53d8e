"""Fault injection per adapter, through the rates layer: each fault ends in its documented outcome and log event.

Temporary failures (timeout, refused, 429, 5xx) are retried within bounds, then the source is skipped for the cycle
(`source_failed`); malformed data is never retried (`source_failed`); implausible or stale values are rejected
(`quote_rejected`). In every failing case no rate reaches the optimizer.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from aggregator.rates.collect import RateBook, collect
from aggregator.settings import Settings
from tests.adapters.cases import HTTP_CASES, Case, one_source_settings
from tests.adapters.test_contract import http_settings
from tests.fixture_server import FixtureServer, Reply

ATTEMPTS = 3


def _settings(case: Case, url: str) -> Settings:
    source = http_settings(
        case,
        url,
        timeout_seconds=0.3,
        max_attempts=ATTEMPTS,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.02,
    )
    return one_source_settings(source, case.key)


def _now(case: Case) -> datetime:
    return (case.observed or datetime(2026, 11, 24, tzinfo=UTC)) + timedelta(hours=1)


def _set(doc: Any, path: tuple[str | int, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(doc)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


def _get(doc: Any, path: tuple[str | int, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _rename(doc: Any, path: tuple[str | int, ...]) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[f"{path[-1]}_v2"] = node.pop(path[-1])
    return out


def _scale(case: Case, factor: float) -> Any:
    value = _get(case.payload(), case.value_path)
    scaled = float(value) * factor
    return _set(case.payload(), case.value_path, str(scaled) if case.string_valued else scaled)


def _body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _run(
    case: Case, replies: list[Reply] | None, url: str | None = None
) -> tuple[RateBook, list[dict[str, Any]], int, float]:
    with FixtureServer() as server:
        if replies is not None:
            server.routes[case.path] = replies
        settings = _settings(case, url or server.url)

        async def go() -> RateBook:
            async with httpx.AsyncClient() as client:
                return await collect(settings, client, lambda: _now(case))

        start = time.monotonic()
        with capture_logs() as logs:
            book = asyncio.run(go())
        return book, logs, server.hits[case.path], time.monotonic() - start


def _failed(logs: list[dict[str, Any]], *fragments: str) -> dict[str, Any]:
    events = [e for e in logs if e["event"] == "source_failed"]
    assert len(events) == 1, logs
    for f in fragments:
        assert f in events[0]["reason"], events[0]
    return events[0]


def _rejected(logs: list[dict[str, Any]], fragment: str) -> None:
    events = [e for e in logs if e["event"] == "quote_rejected"]
    assert events and fragment in events[0]["reason"], logs


IDS = [c.adapter for c in HTTP_CASES]
cases = pytest.mark.parametrize("case", HTTP_CASES, ids=IDS)


@cases
def test_timeout_is_retried_then_the_source_skipped(case: Case) -> None:
    """A server slower than the timeout: every attempt times out, source_failed, nothing optimised on."""
    book, logs, hits, _ = _run(case, [Reply(_body(case.payload()), delay=1.0)])
    _failed(logs, "timeout", f"after {ATTEMPTS} attempts")
    assert not book.rates and hits == ATTEMPTS


@cases
def test_connection_refused(case: Case) -> None:
    """Nobody listening: a temporary failure, retried, then skipped."""
    book, logs, _, _ = _run(case, None, url="http://127.0.0.1:9")
    _failed(logs, "connection failed")
    assert not book.rates


@cases
def test_429_honours_retry_after_then_succeeds(case: Case) -> None:
    """A 429 with Retry-After: 1 is waited out, and the second answer is used."""
    replies = [Reply(b"{}", status=429, headers=(("Retry-After", "1"),)), Reply(_body(case.payload()))]
    book, logs, hits, elapsed = _run(case, replies)
    assert hits == 2 and elapsed >= 1.0
    assert [r.value for r in book.rates] == [pytest.approx(case.expected)]
    assert not [e for e in logs if e["event"] in ("source_failed", "quote_rejected")]


@cases
def test_server_error_is_retried_a_bounded_number_of_times(case: Case) -> None:
    """HTTP 500 on every try: exactly max_attempts requests, then source_failed."""
    book, logs, hits, _ = _run(case, [Reply(b"oops", status=500, content_type="text/plain")])
    _failed(logs, "HTTP 500")
    assert hits == ATTEMPTS and not book.rates


@pytest.mark.parametrize(
    ("fault", "reply", "reason"),
    [
        (
            "truncated body",
            lambda c: Reply(_body(c.payload())[: len(_body(c.payload())) // 2]),
            "not valid JSON",
        ),
        (
            "HTML error page",
            lambda c: Reply(b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
            "expected JSON",
        ),
        (
            "wrong content type",
            lambda c: Reply(_body(c.payload()), content_type="text/plain"),
            "expected JSON",
        ),
    ],
)
@cases
def test_malformed_answers_are_not_retried(
    case: Case, fault: str, reply: Callable[[Case], Reply], reason: str
) -> None:
    """Bad bodies are data errors: one request, source_failed naming why."""
    book, logs, hits, _ = _run(case, [reply(case)])
    _failed(logs, reason)
    assert hits == 1 and not book.rates, fault


LENIENT = frozenset(
    {"binance", "coinbase", "defillama", "etherfi", "frax", "kelp", "lido", "renzo", "rocketpool", "swell"}
)
"""Adapters reading their numbers with `adapters.endpoints.number`: a JSON number or a numeric string, and a
missing or non-numeric field rejects that quote (naming the field) instead of failing the source."""


@cases
def test_renamed_field_is_rejected(case: Case) -> None:
    """The quoted field renamed upstream: no value is guessed; the rejection or failure names the field."""
    if not case.value_path:
        pytest.skip("the endpoint answers a bare number: there is no field to rename")
    book, logs, _, _ = _run(case, [Reply(_body(_rename(case.payload(), case.value_path)))])
    assert not book.rates
    if case.adapter == "defillama":  # apyBase is nullable in /pools: a pool without it has no quote
        _rejected(logs, "field apyBase is null or missing")
    elif case.adapter in LENIENT:
        _rejected(logs, f"field {'.'.join(map(str, case.value_path))} is missing from the answer")
        assert not [e for e in logs if e["event"] == "source_failed"], logs
    else:
        _failed(logs, str(case.value_path[-1]))


@cases
def test_value_as_numeric_string_or_number(case: Case) -> None:
    """The quoted number sent in the other JSON form (a string where the recording has a number, or the reverse):
    the lenient adapters read it to the same value; the strict ones (their APIs document one form) fail."""
    value = _get(case.payload(), case.value_path)
    other = float(value) if isinstance(value, str) else str(value)
    book, logs, _, _ = _run(case, [Reply(_body(_set(case.payload(), case.value_path, other)))])
    if case.adapter in LENIENT:
        assert [r.value for r in book.rates] == [pytest.approx(case.expected)], logs
    else:
        assert not book.rates
        _failed(logs)


@cases
def test_value_not_a_number_is_rejected(case: Case) -> None:
    """A non-numeric value ("n/a") never becomes a rate: the lenient adapters reject the quote naming the field,
    the strict ones fail the source."""
    book, logs, _, _ = _run(case, [Reply(_body(_set(case.payload(), case.value_path, "n/a")))])
    assert not book.rates
    if case.adapter in LENIENT:
        _rejected(logs, "is not a number or a numeric string: 'n/a'")
    else:
        _failed(logs)


@cases
def test_unit_slip_is_rejected_as_absurd(case: Case) -> None:
    """A value 100× too large (percent where a fraction belongs) is rejected by max_yield."""
    book, logs, _, _ = _run(case, [Reply(_body(_scale(case, 100.0)))])
    assert not book.rates
    _rejected(logs, "above max_yield")


@cases
def test_negative_value_is_rejected(case: Case) -> None:
    """A negative yield is below min_yield and rejected."""
    book, logs, _, _ = _run(case, [Reply(_body(_scale(case, -1.0)))])
    assert not book.rates
    _rejected(logs, "below min_yield")


@cases
def test_stale_timestamp_is_rejected(case: Case) -> None:
    """An observation 30 days older than the clock is stale (max_age_hours 48)."""
    if not case.timestamp_path:
        pytest.skip("this source reports no observation time: the fetch time is used")
    old = _get(case.payload(), case.timestamp_path)
    shifted = old - 30 * 86400 if isinstance(old, int) else "2025-02-20T00:00:00.000Z"
    book, logs, _, _ = _run(case, [Reply(_body(_set(case.payload(), case.timestamp_path, shifted)))])
    assert not book.rates
    _rejected(logs, "stale")


@cases
def test_nan_is_rejected(case: Case) -> None:
    """A NaN (valid in Python's JSON parser) never becomes a rate: not finite, or not a numeric string."""
    if case.string_valued:
        body = _body(_set(case.payload(), case.value_path, "NaN"))
    else:
        body = _body(_set(case.payload(), case.value_path, "__NAN__")).replace(b'"__NAN__"', b"NaN")
    book, logs, _, _ = _run(case, [Reply(body)])
    assert not book.rates
    if case.string_valued:
        _rejected(logs, "is not a number or a numeric string: 'NaN'")
    else:
        _rejected(logs, "not a finite number")
