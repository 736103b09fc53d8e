"""One contract test over the whole registry: every adapter, served its recorded payload, returns the quote it was
asked for with the units pinned (a fraction per year) and an honest observation time."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import httpx
import pytest

from adapters import REGISTRY, Quote
from tests.adapters.cases import HTTP_CASES, ROOT, Case
from tests.fixture_server import FixtureServer, Reply

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LOCAL = {
    "snapshot": (
        {"adapter": "snapshot", "path": str(ROOT / "data/snapshots/demo-2026-09-14.json")},
        "lido-steth.base",
        0.02235,
    ),
    "static": ({"adapter": "static", "values": {"x": {"value": 0.01305, "note": "test"}}}, "x", 0.01305),
}


def _fetch(adapter: str, raw_settings: dict[str, object], key: str) -> list[Quote]:
    impl = REGISTRY[adapter]
    settings = impl.settings_model.model_validate(raw_settings)

    async def go() -> list[Quote]:
        async with httpx.AsyncClient() as client:
            return await impl.fetch(client, "src", settings, [key], lambda: NOW)

    return asyncio.run(go())


def test_every_registered_adapter_has_a_contract_case() -> None:
    """No adapter joins the registry without a recorded payload and a pinned value."""
    assert set(REGISTRY) == {c.adapter for c in HTTP_CASES} | set(LOCAL) | {
        "onchain"
    }  # onchain: test_onchain.py


def http_settings(case: Case, url: str, **extra: object) -> dict[str, object]:
    raw: dict[str, object] = {"adapter": case.adapter, "base_url": url, **extra}
    if case.adapter == "swell":
        raw["restaking_base_url"] = url
    return raw


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.adapter for c in HTTP_CASES])
def test_http_adapter_contract(case: Case) -> None:
    """The recorded payload gives exactly one quote, in fractions per year, observed when the source says."""
    with FixtureServer() as server:
        server.routes[case.path] = [Reply((ROOT / "tests/fixtures" / case.fixture).read_bytes())]
        quotes = _fetch(case.adapter, http_settings(case, server.url), case.key)
    assert len(quotes) == 1
    q = quotes[0]
    assert (q.source, q.key) == ("src", case.key)
    assert math.isfinite(q.value) and q.value == pytest.approx(case.expected, rel=1e-12)
    assert q.observed_at == (case.observed or NOW) and q.fetched_at == NOW
    assert q.note


@pytest.mark.parametrize("adapter", sorted(LOCAL))
def test_local_adapter_contract(adapter: str) -> None:
    """Snapshot and static adapters keep the same contract without a request."""
    raw, key, expected = LOCAL[adapter]
    quotes = _fetch(adapter, raw, key)
    assert [(q.key, q.source) for q in quotes] == [(key, "src")]
    assert quotes[0].value == pytest.approx(expected)
