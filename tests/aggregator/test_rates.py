"""Rates: bad quotes are rejected with a logged reason, several sources give a median, a dead source is skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from aggregator.rates.collect import RateBook, collect
from aggregator.settings import load_settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _collect(path: Path) -> RateBook:
    async def go() -> RateBook:
        async with httpx.AsyncClient() as client:
            return await collect(load_settings(path), client, lambda: NOW)

    return asyncio.run(go())


def test_demo_rates_come_from_the_snapshot_and_static(demo_config: Callable[..., Path]) -> None:
    """Every demo component has a valid yield; stETH base is the snapshot's 2.235 %."""
    book = _collect(demo_config())
    assert not book.missing and not book.rejected and not book.failed_sources
    y = book.yields()
    assert y["lido-steth"]["base"] == pytest.approx(0.02235)
    assert y["eigenlayer-steth"]["restaking"] == pytest.approx(0.01305)


def test_stale_quotes_are_rejected_and_logged(demo_config: Callable[..., Path]) -> None:
    """With a 1,000 h max age, the 2024/2025 values are stale: rejected, logged, and missing."""
    path = demo_config(lambda t: t.replace("max_age_hours = 20000", "max_age_hours = 1000"))
    with capture_logs() as logs:
        book = _collect(path)
    stale = {r.key for r in book.rejected if r.reason.startswith("stale")}
    assert stale == {"binance-wbeth.base", "renzo-ezeth.base", "kelp-rseth.base"}
    events = [e for e in logs if e["event"] == "quote_rejected"]
    assert {e["key"] for e in events} == stale
    assert ("kelp-rseth", "base") in book.missing


def test_absurd_yield_is_rejected(demo_config: Callable[..., Path]) -> None:
    """A yield above max_yield (a percent where a fraction belongs) never becomes a rate."""
    path = demo_config(lambda t: t.replace("value = 0.01305", "value = 1.305"))
    with capture_logs() as logs:
        book = _collect(path)
    assert any("above max_yield" in r.reason for r in book.rejected)
    assert ("eigenlayer-steth", "restaking") in book.missing
    assert any(e["event"] == "quote_rejected" and e["key"] == "eigenlayer-rewards" for e in logs)


def test_two_sources_give_the_median_and_one_dead_source_is_skipped(demo_config: Callable[..., Path]) -> None:
    """stETH quoted by the snapshot and a static value: median of both; a dead DefiLlama is skipped and logged."""

    def edit(t: str) -> str:
        t = t.replace(
            'quotes = [{ source = "demo", key = "lido-steth.base" }]',
            'quotes = [{ source = "demo", key = "lido-steth.base" }, { source = "assumptions", key = "steth" }, '
            '{ source = "llama", key = "747c1d2a-c668-4682-b9f9-296708a3dd90" }]',
        )
        return t + (
            '\n[sources.assumptions.values.steth]\nvalue = 0.03\nnote = "test"\n'
            '\n[sources.llama]\nadapter = "defillama"\nbase_url = "http://127.0.0.1:9"\ntimeout_seconds = 2\n'
        )

    with capture_logs() as logs:
        book = _collect(demo_config(edit))
    rate = next(r for r in book.rates if r.venue == "lido-steth")
    assert rate.value == pytest.approx((0.02235 + 0.03) / 2)
    assert rate.sources == ("assumptions", "demo")
    assert "llama" in book.failed_sources
    assert any(e["event"] == "source_failed" and e["source"] == "llama" for e in logs)
