"""One source's exception is that source's failure, never the cycle's (issue 14 break 2, issue 19): the other
sources' quotes survive, `source_failed` names the reason, the breaker counts it. And the per-source bounds are
settings with ranges and clear errors."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from adapters import REGISTRY, Quote
from adapters.errors import SourceDataError
from adapters.http import check_json_shape
from adapters.lido import LidoSettings
from aggregator.rates.breaker import SourceHealth
from aggregator.rates.collect import RateBook, collect
from aggregator.settings import Settings
from tests.adapters.cases import FIXTURES
from tests.fixture_server import FixtureServer, Reply

NOW = datetime(2026, 9, 14, 13, tzinfo=UTC)


def _settings(lido_url: str | None = None, **lido: Any) -> Settings:
    """A good static source and a second source: Lido at `lido_url`, or (without a URL) a second static one."""
    second: dict[str, Any] = (
        {"adapter": "lido", "base_url": lido_url, "max_attempts": 1, "breaker_failures": 1, **lido}
        if lido_url
        else {"adapter": "static", "breaker_failures": 1, "values": {"y": {"value": 0.02, "note": "n"}}}
    )
    key = "apr_last" if lido_url else "y"
    return Settings.model_validate(
        {
            "portfolio": {"holdings_eth": {"eth": 1.0}},
            "venues": [
                {"id": "eth", "kind": "idle"},
                {
                    "id": "good",
                    "parent": "eth",
                    "kind": "liquid_staking",
                    "components": [{"name": "base", "quotes": [{"source": "good", "key": "x"}]}],
                },
                {
                    "id": "bad",
                    "parent": "eth",
                    "kind": "liquid_staking",
                    "components": [{"name": "base", "quotes": [{"source": "bad", "key": key}]}],
                },
            ],
            "sources": {
                "good": {"adapter": "static", "values": {"x": {"value": 0.031, "note": "works"}}},
                "bad": second,
            },
        }
    )


def _collect(settings: Settings, health: SourceHealth) -> tuple[RateBook, list[dict[str, Any]]]:
    async def go() -> RateBook:
        async with httpx.AsyncClient() as client:
            return await collect(settings, client, lambda: NOW, health)

    with capture_logs() as logs:
        return asyncio.run(go()), logs


def _assert_isolated(
    book: RateBook, logs: list[dict[str, Any]], health: SourceHealth, *fragments: str
) -> None:
    assert [(r.venue, r.value) for r in book.rates] == [("good", 0.031)]
    failed = [e for e in logs if e["event"] == "source_failed"]
    assert [e["source"] for e in failed] == ["bad"], logs
    for f in fragments:
        assert f in failed[0]["reason"], failed[0]
    assert failed[0]["error"] == "SourceDataError"
    assert "bad" in book.failed_sources
    assert health.breakers["bad"].consecutive == 1
    assert any(e["event"] == "circuit_opened" and e["source"] == "bad" for e in logs)  # breaker_failures = 1


def test_lido_time_out_of_range_rejects_that_quote_naming_the_field() -> None:
    """Issue 19, then issue 20: a Lido `timeUnix` no calendar has made the shared `from_unix` raise a plain
    ValueError (or OverflowError), which `collect` first re-raised (every source's quotes lost), then isolated as
    Lido's failure. Lido now reads leniently and strictly: the time is unusable, so that quote is rejected naming
    `data.timeUnix`; the other source's quote is kept and Lido's breaker does not count it. (Any other exception
    inside an adapter is still that source's failure: `test_any_exception_inside_an_adapter_is_that_sources_failure`.)"""
    doc = json.loads((FIXTURES / "lido" / "apr_last.reconstructed.json").read_text())
    doc["data"]["timeUnix"] = 10**15  # year ~31.7 million
    with FixtureServer() as server:
        server.routes["/v1/protocol/steth/apr/last"] = [Reply(json.dumps(doc).encode())]
        health = SourceHealth()
        book, logs = _collect(_settings(server.url), health)
    assert not [e for e in logs if e["event"] == "source_failed"], logs
    rejected = [e for e in logs if e["event"] == "quote_rejected" and e["source"] == "bad"]
    assert len(rejected) == 1 and "field data.timeUnix is not a usable time: 1e+15" in rejected[0]["reason"]
    assert [r.sources for r in book.rates] == [("good",)]
    assert "bad" not in book.failed_sources


def test_deeply_nested_json_is_refused_before_parsing() -> None:
    """Break 2's payload: 200 KB of nested arrays. Refused by the depth check (no RecursionError), once, not
    retried, and the breaker counts it."""
    depth = 100_000
    with FixtureServer() as server:
        server.routes["/v1/protocol/steth/apr/last"] = [Reply(b"[" * depth + b"]" * depth)]
        health = SourceHealth()
        book, logs = _collect(_settings(server.url), health)
        hits = server.hits["/v1/protocol/steth/apr/last"]
    _assert_isolated(book, logs, health, "nested deeper than max_json_depth 64")
    assert hits == 1


def test_nesting_beyond_the_interpreters_limit_is_still_a_source_failure() -> None:
    """With the depth check raised to its maximum, the parser's own RecursionError is still only that source's
    failure (a data error: the body is not JSON we can read)."""
    depth = 100_000
    with FixtureServer() as server:
        server.routes["/v1/protocol/steth/apr/last"] = [Reply(b"[" * depth + b"]" * depth)]
        health = SourceHealth()
        settings = _settings(server.url, max_json_depth=512, max_json_containers=10_000_000)
        book, logs = _collect(settings, health)
    _assert_isolated(book, logs, health)


@pytest.mark.parametrize(
    "exc",
    [
        RecursionError("maximum recursion depth exceeded"),
        ValueError("year 31690708 is out of range"),
        KeyError("data"),
        TypeError("'NoneType' object is not subscriptable"),
        OverflowError("timestamp out of range for platform time_t"),
        ZeroDivisionError("float division by zero"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_any_exception_inside_an_adapter_is_that_sources_failure(
    exc: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever an adapter raises becomes a SourceDataError for that source, named in `source_failed`; the good
    source beside it (the same adapter kind, so the same code path) keeps its quote."""
    real = REGISTRY["static"]

    class Picky:
        settings_model = real.settings_model
        keys = real.keys

        async def fetch(self, client: Any, name: str, *rest: Any) -> list[Quote]:
            if name == "bad":
                raise exc
            return await real.fetch(client, name, *rest)

    monkeypatch.setitem(REGISTRY, "static", Picky())
    health = SourceHealth()
    book, logs = _collect(_settings(), health)
    _assert_isolated(book, logs, health, type(exc).__name__, "adapter failed on this answer")


def test_a_huge_exception_message_is_cut_before_it_is_logged_or_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception quoting 5 MB of what a source sent is cut to the reason bound."""
    real = REGISTRY["static"]

    class Loud:
        settings_model = real.settings_model
        keys = real.keys

        async def fetch(self, client: Any, name: str, *rest: Any) -> list[Quote]:
            if name == "bad":
                raise ValueError("x" * 5_000_000)
            return await real.fetch(client, name, *rest)

    monkeypatch.setitem(REGISTRY, "static", Loud())
    book, logs = _collect(_settings(), SourceHealth())
    assert len(book.failed_sources["bad"]) <= 1000
    assert "cut from" in book.failed_sources["bad"]
    assert all(len(e.get("reason", "")) <= 1000 for e in logs)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"deadline_seconds": 5, "timeout_seconds": 10}, "shorter than timeout_seconds"),
        ({"deadline_seconds": 0}, "greater than 0"),
        ({"max_response_bytes": 10}, "greater than or equal to 1024"),
        ({"max_json_depth": 100_000}, "less than or equal to 512"),
    ],
)
def test_bad_bounds_are_refused_with_a_clear_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LidoSettings(adapter="lido", **fields)


def test_defaults_and_a_long_timeout_raise_the_default_deadline() -> None:
    """Defaults: a 60 s deadline, 4 MiB (32 MiB for DefiLlama's /pools), depth 64; a per-read timeout longer
    than the default deadline raises the deadline with it rather than failing a config that used to load."""
    s = LidoSettings(adapter="lido")
    assert (s.deadline_seconds, s.max_response_bytes, s.max_json_depth) == (60.0, 4 * 1024 * 1024, 64)
    assert LidoSettings(adapter="lido", timeout_seconds=120).deadline_seconds == 120
    llama = REGISTRY["defillama"].settings_model.model_validate({"adapter": "defillama"})
    assert llama.max_response_bytes == 32 * 1024 * 1024


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (b"[" * 64 + b"]" * 64, None),
        (b"[" * 65 + b"]" * 65, "nested deeper"),
        (b'{"a": "' + b"[" * 500 + b'"}', None),  # brackets inside a string are text
        (b'{"a": "\\"' + b"[" * 500 + b'"}', None),  # after an escaped quote too
        (b"[" + b"[]," * 200_000 + b"[]]", None),
        (b"[" + b"[]," * 250_000 + b"[]]", "more than max_json_containers"),
        ((b"[" * 40 + b"]" * 40 + b",") * 5_000, None),  # wide, never deep: the running depth resets
    ],
)
def test_json_shape_check(body: bytes, refused: str | None) -> None:
    """The depth and container limits, counted on the bytes before any parsing."""
    if refused is None:
        check_json_shape("s", body, 64, 250_000, "u")
    else:
        with pytest.raises(SourceDataError, match=refused):
            check_json_shape("s", body, 64, 250_000, "u")


def test_a_quote_without_a_time_zone_is_that_sources_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """A quote stamped with a naive time would make the age check raise TypeError in the rates layer, outside the
    adapter: it is refused at the boundary as that source's failure."""
    real = REGISTRY["static"]

    class Naive:
        settings_model = real.settings_model
        keys = real.keys

        async def fetch(self, client: Any, name: str, *rest: Any) -> list[Quote]:
            quotes = await real.fetch(client, name, *rest)
            if name == "bad":
                return [
                    q.model_copy(update={"observed_at": q.observed_at.replace(tzinfo=None)}) for q in quotes
                ]
            return quotes

    monkeypatch.setitem(REGISTRY, "static", Naive())
    health = SourceHealth()
    book, logs = _collect(_settings(), health)
    _assert_isolated(book, logs, health, "not a quote with an aware time")


def _deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as the RFC says
        ("deflate", _deflate_raw),  # raw, as some servers send it
        ("identity", lambda b: b),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "identity"],
)
def test_compressed_answers_are_decoded(encoding: str, encode: Any) -> None:
    """The streamed decoder reads what real APIs send: the recorded Lido answer, compressed, gives its quote."""
    body = (FIXTURES / "lido" / "apr_last.reconstructed.json").read_bytes()
    with FixtureServer() as server:
        server.routes["/v1/protocol/steth/apr/last"] = [
            Reply(encode(body), headers=(("Content-Encoding", encoding),))
        ]
        book, logs = _collect(_settings(server.url), SourceHealth())
    assert {r.venue: r.value for r in book.rates} == {"good": 0.031, "bad": pytest.approx(0.02235)}, logs


def test_an_unknown_encoding_is_a_data_error() -> None:
    with FixtureServer() as server:
        server.routes["/v1/protocol/steth/apr/last"] = [Reply(b"xx", headers=(("Content-Encoding", "br"),))]
        health = SourceHealth()
        book, logs = _collect(_settings(server.url), health)
    _assert_isolated(book, logs, health, "unsupported Content-Encoding 'br'")
