"""The sources as they answer in 2026, on their real recorded bodies (tests/fixtures/PROVENANCE.toml): units pinned
per field, endpoints moved (the fallback URL answers and is named), numbers as strings, optional fields absent.
Everything is served from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from adapters import REGISTRY, Quote
from adapters.endpoints import EndpointSettings, resolve_urls
from adapters.errors import SourceError
from adapters.etherfi import EtherfiAdapter, EtherfiSettings
from adapters.rocketpool import RocketpoolAdapter
from aggregator.rates.collect import RateBook, collect
from tests.adapters.cases import FIXTURES, one_source_settings
from tests.fixture_server import FixtureServer, Reply

NOW = datetime(2026, 10, 9, 13, tzinfo=UTC)
ETHERFI_NEW = "/api/dapp/protocol/protocol-detail"
ETHERFI_OLD = "/api/protocol/protocol-detail"
RP_NEW = "/mainnet/reth/apr"
RP_OLD = "/api/apr"


def _body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _fetch(adapter: str, raw: dict[str, Any], keys: list[str]) -> list[Quote]:
    impl = REGISTRY[adapter]
    settings = impl.settings_model.model_validate({"adapter": adapter, **raw})

    async def go() -> list[Quote]:
        async with httpx.AsyncClient() as client:
            return await impl.fetch(client, "src", settings, keys, lambda: NOW)

    return asyncio.run(go())


def _collect(source: dict[str, Any], key: str) -> tuple[RateBook, list[dict[str, Any]]]:
    settings = one_source_settings({"max_attempts": 1, **source}, key)

    async def go() -> RateBook:
        async with httpx.AsyncClient() as client:
            return await collect(settings, client, lambda: NOW)

    with capture_logs() as logs:
        book = asyncio.run(go())
    return book, logs


def test_lido_sma_recorded_2026_10() -> None:
    """Lido's /apr/sma as recorded in October 2026: smaApr is percent, the newest report's time is the
    observation time."""
    with FixtureServer() as server:
        server.routes["/v1/protocol/steth/apr/sma"] = [Reply(_body("lido/apr_sma.json"))]
        (q,) = _fetch("lido", {"base_url": server.url}, ["apr_sma"])
    assert q.value == pytest.approx(0.022455714285714286, rel=1e-12)
    assert q.observed_at == datetime(2026, 10, 9, 12, 22, 35, tzinfo=UTC)
    assert q.origin == "lido-api" and q.url.endswith("/v1/protocol/steth/apr/sma")


def test_rocketpool_hundred_decimal_string_on_todays_url() -> None:
    """`yearlyAPR` "2.1000…" (a numeric string with ~100 decimals, percent) from /mainnet/reth/apr: 0.021 per year,
    and the older /api/apr is not asked."""
    with FixtureServer() as server:
        server.routes[RP_NEW] = [Reply(_body("rocketpool/reth_apr.json"))]
        (q,) = _fetch("rocketpool", {"base_url": server.url}, ["apr"])
        assert server.hits[RP_OLD] == 0
    assert q.value == pytest.approx(0.021, rel=1e-12)
    assert q.url == f"{server.url}{RP_NEW}"


def test_rocketpool_answering_only_on_its_old_url_still_quotes() -> None:
    """/mainnet/reth/apr gone (404): /api/apr answers, the quote names it and the fallback is logged."""
    with FixtureServer() as server:
        server.routes[RP_OLD] = [Reply(_body("rocketpool/reth_apr.json"))]
        book, logs = _collect({"adapter": "rocketpool", "base_url": server.url}, "apr")
    assert [r.value for r in book.rates] == [pytest.approx(0.021)]
    assert book.rates[0].urls == (f"src: {server.url}{RP_OLD}",)
    (event,) = [e for e in logs if e["event"] == "source_fallback_used"]
    assert event["url"] == f"{server.url}{RP_OLD}" and "HTTP 404" in event["failed"][0]


def test_etherfi_on_the_new_url_pins_both_fields_in_percent() -> None:
    """ether.fi's body (quoted by seamless-protocol, 2025) at www.ether.fi/api/dapp/…: both fields percent."""
    with FixtureServer() as server:
        server.routes[ETHERFI_NEW] = [Reply(_body("etherfi/protocol-detail.json"))]
        quotes = _fetch("etherfi", {"base_url": server.url}, ["7_day_apr", "7_day_restaking_apr"])
        assert server.hits[ETHERFI_OLD] == 0
    values = {q.key: q.value for q in quotes}
    assert values == {
        "7_day_apr": pytest.approx(0.0268, rel=1e-12),
        "7_day_restaking_apr": pytest.approx(0.013050994875671165, rel=1e-12),
    }
    assert {q.url for q in quotes} == {f"{server.url}{ETHERFI_NEW}"}


def test_etherfi_old_url_answers_when_the_new_one_sends_html() -> None:
    """The new URL answering an HTML page (a moved or blocked route) falls back to app.ether.fi's path."""
    with FixtureServer() as server:
        server.routes[ETHERFI_NEW] = [Reply(b"<html>moved</html>", content_type="text/html")]
        server.routes[ETHERFI_OLD] = [Reply(_body("etherfi/protocol-detail.json"))]
        book, logs = _collect({"adapter": "etherfi", "base_url": server.url}, "7_day_restaking_apr")
    assert [r.value for r in book.rates] == [pytest.approx(0.013050994875671165)]
    assert book.rates[0].urls == (f"src: {server.url}{ETHERFI_OLD}",)
    assert any(e["event"] == "source_fallback_used" for e in logs)


def test_a_json_answer_without_the_fields_passes_to_the_next_url() -> None:
    """The new URL answers JSON but not the protocol detail (e.g. an error object): the old URL is asked."""
    with FixtureServer() as server:
        server.routes[ETHERFI_NEW] = [Reply(b'{"error": "not found"}')]
        server.routes[ETHERFI_OLD] = [Reply(_body("etherfi/protocol-detail.json"))]
        quotes = _fetch("etherfi", {"base_url": server.url}, ["7_day_apr"])
    assert [q.url for q in quotes] == [f"{server.url}{ETHERFI_OLD}"]


def test_every_url_failing_names_each_and_fails_the_source() -> None:
    with FixtureServer() as server:
        book, _ = _collect({"adapter": "etherfi", "base_url": server.url}, "7_day_apr")
    reason = book.failed_sources["src"]
    assert "every URL failed" in reason and ETHERFI_NEW in reason and ETHERFI_OLD in reason


def test_the_fallback_shares_the_sources_deadline() -> None:
    """A first URL that eats the whole deadline leaves no time for the next: one deadline for the source, not
    one per URL."""
    with FixtureServer() as server:
        server.routes[RP_NEW] = [Reply(_body("rocketpool/reth_apr.json"), delay=2.0)]
        server.routes[RP_OLD] = [Reply(_body("rocketpool/reth_apr.json"))]
        source = {
            "adapter": "rocketpool",
            "base_url": server.url,
            "timeout_seconds": 1,
            "deadline_seconds": 1,
        }
        book, _ = _collect(source, "apr")
        assert server.hits[RP_OLD] == 0
    assert "deadline of 1s exceeded" in book.failed_sources["src"]


def test_coinbase_documented_body_without_apy_is_a_named_rejection() -> None:
    """Coinbase documents /wrapped-assets/CBETH/ without `apy`: the quote is rejected naming the field; the source
    itself answered, so it is not counted as failing (its breaker stays closed)."""
    with FixtureServer() as server:
        server.routes["/wrapped-assets/CBETH/"] = [Reply(_body("coinbase/cbeth.docs-without-apy.json"))]
        book, logs = _collect({"adapter": "coinbase", "base_url": server.url}, "apy")
    assert not book.rates and not book.failed_sources
    (event,) = [e for e in logs if e["event"] == "quote_rejected"]
    assert "field apy is missing" in event["reason"] and "optional" in event["reason"]


def test_coinbase_documented_example_is_a_fraction_string() -> None:
    with FixtureServer() as server:
        server.routes["/wrapped-assets/CBETH/"] = [Reply(_body("coinbase/cbeth.docs-example.json"))]
        (q,) = _fetch("coinbase", {"base_url": server.url}, ["apy"])
    assert q.value == pytest.approx(0.0384, rel=1e-12) and q.origin == "coinbase-api"


@pytest.mark.parametrize(
    ("adapter", "fixture", "path", "field", "expected"),
    [
        ("binance", "binance/project.reconstructed.json", "/bapi/earn/v1/public/pos/cftoken/project/getPurchasableProject", ("data", "annualInterestRate"), 0.0314),
        ("kelp", "kelp/apy.reconstructed.json", "/rseth/apy", ("value",), 0.0355),
    ],
)  # fmt: skip
def test_binance_and_kelp_read_numeric_strings(
    adapter: str, fixture: str, path: str, field: tuple[str, ...], expected: float
) -> None:
    """Other integrators accept Binance's and Kelp's numbers as strings; so does this adapter, to the same value."""
    doc = json.loads(_body(fixture))
    node = doc
    for p in field[:-1]:
        node = node[p]
    node[field[-1]] = str(node[field[-1]])
    with FixtureServer() as server:
        server.routes[path] = [Reply(json.dumps(doc).encode())]
        (q,) = _fetch(
            adapter, {"base_url": server.url}, [REGISTRY[adapter].keys and sorted(REGISTRY[adapter].keys)[0]]
        )  # type: ignore[list-item]
    assert q.value == pytest.approx(expected, rel=1e-12)


def test_defillama_one_pool_asked_for_by_id_and_by_name_quotes_both_keys() -> None:
    """Regression: `747c1d2a-…` and `lido/Ethereum/STETH` name the same pool; both keys are quoted (one used to be
    dropped, so a component quoting the name lost its value)."""
    name = "lido/Ethereum/STETH"
    pool = "747c1d2a-c668-4682-b9f9-296708a3dd90"
    with FixtureServer() as server:
        server.routes["/pools"] = [Reply(_body("defillama/pools.partly-reconstructed.json"))]
        quotes = _fetch("defillama", {"base_url": server.url}, [pool, name])
    assert sorted((q.key, q.value) for q in quotes) == [(pool, 0.02235), (name, 0.02235)]
    assert {q.origin for q in quotes} == {"lido-api"}


def test_urls_order_and_base_url() -> None:
    """Today's URLs first by default; `base_url` moves each to another host keeping its path; `urls` replaces."""
    etherfi = EtherfiSettings(adapter="etherfi")
    assert resolve_urls(etherfi, EtherfiAdapter.urls) == [
        "https://www.ether.fi/api/dapp/protocol/protocol-detail",
        "https://app.ether.fi/api/protocol/protocol-detail",
    ]
    moved = EtherfiSettings(adapter="etherfi", base_url="http://127.0.0.1:9/etherfi/")
    assert resolve_urls(moved, EtherfiAdapter.urls) == [
        "http://127.0.0.1:9/etherfi/api/dapp/protocol/protocol-detail",
        "http://127.0.0.1:9/etherfi/api/protocol/protocol-detail",
    ]
    assert RocketpoolAdapter.urls[0].endswith("/mainnet/reth/apr")
    with pytest.raises(ValueError, match="http"):
        EndpointSettings(urls=["ftp://x/apr"])


def test_sources_errors_never_escape_as_other_exceptions() -> None:
    """A body of the wrong kind (a JSON list) fails the source with a SourceError naming what was expected."""
    with FixtureServer() as server:
        server.routes[RP_NEW] = [Reply(b"[1, 2]")]
        server.routes[RP_OLD] = [Reply(b"[1, 2]")]
        with pytest.raises(SourceError, match="expected a JSON object"):
            _fetch("rocketpool", {"base_url": server.url, "max_attempts": 1}, ["apr"])


def test_defillama_says_why_a_key_has_no_quote() -> None:
    """A pool missing from /pools, or a name no pool has, is a rejection that says which."""
    with FixtureServer() as server:
        server.routes["/pools"] = [Reply(_body("defillama/pools.partly-reconstructed.json"))]
        book, _ = _collect(
            {"adapter": "defillama", "base_url": server.url}, "33c732f6-a78d-41da-af5b-ccd9fa5e52d5"
        )
    assert [r.reason for r in book.rejected] == ["no pool 33c732f6-a78d-41da-af5b-ccd9fa5e52d5 in /pools"]
