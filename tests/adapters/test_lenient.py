"""Lido, Swell and DefiLlama read leniently and strictly, as the other HTTP adapters do (issue 20): a missing or
unusable field rejects that quote (`quote_rejected` naming the field and the URL), never the whole source; the
source's other quotes still count. Before, each of these bodies failed the source (`source_failed`) and took the
good quotes with it. Served by a real HTTP server on 127.0.0.1, through the rates layer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from aggregator.rates.collect import RateBook, collect
from aggregator.settings import Settings
from tests.adapters.cases import FIXTURES
from tests.fixture_server import FixtureServer, Reply

STETH_POOL = "747c1d2a-c668-4682-b9f9-296708a3dd90"
RETH_POOL = "d4b3c522-6127-4b89-bedf-83641cdcd2eb"


def _settings(source: dict[str, Any], keys: dict[str, str]) -> Settings:
    """Idle ETH and one venue per key (venue id -> the source's key), every yield quoted by `source` ("src")."""
    venues: list[dict[str, Any]] = [{"id": "eth", "kind": "idle"}]
    venues += [
        {
            "id": venue,
            "parent": "eth",
            "kind": "liquid_staking",
            "components": [{"name": "base", "quotes": [{"source": "src", "key": key}]}],
        }
        for venue, key in keys.items()
    ]
    return Settings.model_validate(
        {"portfolio": {"holdings_eth": {"eth": 1.0}}, "venues": venues, "sources": {"src": source}}
    )


def _collect(settings: Settings, now: datetime) -> tuple[RateBook, list[dict[str, Any]]]:
    async def go() -> RateBook:
        async with httpx.AsyncClient() as client:
            return await collect(settings, client, lambda: now)

    with capture_logs() as logs:
        book = asyncio.run(go())
    return book, logs


def _events(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event]


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _lido(last: Any, now: datetime) -> tuple[RateBook, list[dict[str, Any]]]:
    with FixtureServer() as server:
        server.routes["/v1/protocol/steth/apr/last"] = [Reply(json.dumps(last).encode())]
        server.routes["/v1/protocol/steth/apr/sma"] = [Reply((FIXTURES / "lido/apr_sma.json").read_bytes())]
        source = {"adapter": "lido", "base_url": server.url, "max_attempts": 1}
        return _collect(_settings(source, {"last": "apr_last", "sma": "apr_sma"}), now)


SMA_NOW = datetime.fromtimestamp(1791548555, tz=UTC) + timedelta(hours=1)  # the SMA recording's newest report


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["data"].pop("apr"), "field data.apr is missing from the answer"),
        (lambda d: d["data"].__setitem__("apr", None), "field data.apr is null"),
        (lambda d: d["data"].pop("timeUnix"), "field data.timeUnix is missing from the answer"),
        (lambda d: d.pop("data"), "field data.apr is missing from the answer"),
    ],
    ids=["apr missing", "apr null", "timeUnix missing", "data missing"],
)
def test_lido_rejects_the_quote_naming_the_field_and_keeps_the_other(edit: Any, field: str) -> None:
    last = _fixture("lido/apr_last.reconstructed.json")
    last["data"]["timeUnix"] = int(SMA_NOW.timestamp()) - 600
    edit(last)
    book, logs = _lido(last, SMA_NOW)
    assert not _events(logs, "source_failed"), logs
    assert [(r.venue, r.value) for r in book.rates] == [("sma", pytest.approx(0.022455714285714286))]
    rejected = [e for e in _events(logs, "quote_rejected") if e["key"] == "apr_last"]
    assert len(rejected) == 1, logs
    assert field in rejected[0]["reason"] and "/v1/protocol/steth/apr/last" in rejected[0]["reason"]
    assert book.missing == [("last", "base")]


def test_lido_reads_numeric_strings() -> None:
    """The APR and the report time as numeric strings are read to the same quote."""
    last = _fixture("lido/apr_last.reconstructed.json")
    when = int(SMA_NOW.timestamp()) - 600
    last["data"] = {"timeUnix": str(when), "apr": "2.235"}
    book, logs = _lido(last, SMA_NOW)
    by_venue = {r.venue: r for r in book.rates}
    assert by_venue["last"].value == pytest.approx(0.02235)
    assert by_venue["last"].observed_at == datetime.fromtimestamp(when, tz=UTC)
    assert not _events(logs, "quote_rejected"), logs


def test_lido_body_not_an_object_still_fails_the_source() -> None:
    """A body of the wrong kind altogether is the source's failure, as for the other adapters."""
    book, logs = _lido([1, 2, 3], SMA_NOW)
    failed = _events(logs, "source_failed")
    assert len(failed) == 1 and "expected a JSON object, got list" in failed[0]["reason"], logs
    assert not book.rates


def _swell(sweth: bytes, rsweth: bytes) -> tuple[RateBook, list[dict[str, Any]]]:
    with FixtureServer() as server:
        server.routes["/sw/api/tokens/sweth/apr"] = [Reply(sweth)]
        server.routes["/rsw/api/tokens/rsweth/apr"] = [Reply(rsweth)]
        source = {
            "adapter": "swell",
            "base_url": f"{server.url}/sw",
            "restaking_base_url": f"{server.url}/rsw",
            "max_attempts": 1,
        }
        return _collect(
            _settings(source, {"sw": "sweth", "rsw": "rsweth"}), datetime(2026, 11, 24, tzinfo=UTC)
        )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"apr": 3.1}', "field (the body) is not a number or a numeric string: dict"),
        (b"null", "field (the body) is null"),
        (b'"n/a"', "field (the body) is not a number or a numeric string: 'n/a'"),
    ],
    ids=["object", "null", "not numeric"],
)
def test_swell_rejects_one_key_and_keeps_the_other(body: bytes, reason: str) -> None:
    book, logs = _swell((FIXTURES / "swell/sweth_apr.reconstructed.json").read_bytes(), body)
    assert not _events(logs, "source_failed"), logs
    assert [(r.venue, r.value) for r in book.rates] == [("sw", pytest.approx(0.0296))]
    rejected = [e for e in _events(logs, "quote_rejected") if e["key"] == "rsweth"]
    assert len(rejected) == 1 and reason in rejected[0]["reason"], logs
    assert "/rsw/api/tokens/rsweth/apr" in rejected[0]["reason"]


def test_swell_reads_a_numeric_string() -> None:
    """Integrators read the body as text and parse it: a quoted number is the same APR."""
    book, logs = _swell(b'"2.96"', b"3.1")
    assert {r.venue: r.value for r in book.rates} == {
        "sw": pytest.approx(0.0296),
        "rsw": pytest.approx(0.031),
    }
    assert not _events(logs, "quote_rejected"), logs


def _defillama(edit: Any) -> tuple[RateBook, list[dict[str, Any]]]:
    pools = _fixture("defillama/pools.partly-reconstructed.json")
    row = next(r for r in pools["data"] if r["pool"] == STETH_POOL)
    edit(row)
    with FixtureServer() as server:
        server.routes["/pools"] = [Reply(json.dumps(pools).encode())]
        source = {"adapter": "defillama", "base_url": server.url, "max_attempts": 1}
        settings = _settings(source, {"steth": STETH_POOL, "reth": RETH_POOL})
        return _collect(settings, datetime(2026, 11, 24, tzinfo=UTC))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda r: r.pop("project"), "field project: Field required"),
        (lambda r: r.__setitem__("symbol", 7), "field symbol: Input should be a valid string"),
        (
            lambda r: r.__setitem__("apyBase", "n/a"),
            "field apyBase is not a number or a numeric string: 'n/a'",
        ),
        (
            lambda r: r.__setitem__("apyBase", [2.2]),
            "field apyBase is not a number or a numeric string: list",
        ),
    ],
    ids=["project missing", "symbol not text", "apyBase not numeric", "apyBase a list"],
)
def test_defillama_rejects_the_pools_quote_naming_the_field_and_keeps_the_others(
    edit: Any, reason: str
) -> None:
    book, logs = _defillama(edit)
    assert not _events(logs, "source_failed"), logs
    assert [(r.venue, r.value) for r in book.rates] == [("reth", pytest.approx(0.0217))]
    rejected = [e for e in _events(logs, "quote_rejected") if e["key"] == STETH_POOL]
    assert len(rejected) == 1, logs
    assert rejected[0]["reason"] == f"pool {STETH_POOL}: {reason}"


def test_defillama_reads_a_numeric_string() -> None:
    book, logs = _defillama(lambda r: r.__setitem__("apyBase", "2.235"))
    assert {r.venue: r.value for r in book.rates} == {
        "steth": pytest.approx(0.02235),
        "reth": pytest.approx(0.0217),
    }
    assert not _events(logs, "quote_rejected"), logs
