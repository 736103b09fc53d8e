"""Per-venue Prometheus gauges (weight, target weight, net yield, ETH exposure), scraped from /metrics of a real
uvicorn server over 127.0.0.1 after a dry run and after an applied rebalance: each equals the proposal the API
serves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.settings import load_settings
from tests.helpers.api import api_client

TOKEN = "t0ken-for-tests-0123456789"
VENUE_GAUGES = (
    "aggregator_venue_weight",
    "aggregator_venue_target_weight",
    "aggregator_venue_net_yield",
    "aggregator_venue_exposure_eth",
)


@pytest.fixture
def client(demo_config: Callable[..., Path]) -> Iterator[httpx.Client]:
    with api_client(load_settings(demo_config()), TOKEN) as c:
        yield c


def scrape(client: httpx.Client) -> dict[str, dict[str, float]]:
    """{metric name: {venue: value}} of the per-venue gauges, parsed by prometheus_client's own parser."""
    out: dict[str, dict[str, float]] = {name: {} for name in VENUE_GAUGES}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name in out:
                out[sample.name][sample.labels["venue"]] = sample.value
    return out


def rebalance(client: httpx.Client, *, apply: bool) -> dict[str, object]:
    response = client.post(
        "/api/v1/rebalance", json={"apply": apply}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text
    plan: dict[str, object] = client.get(f"/api/v1/proposals/{response.json()['proposal']}").json()["plan"]
    return plan


def test_no_venue_series_before_any_cycle(client: httpx.Client) -> None:
    assert scrape(client) == {name: {} for name in VENUE_GAUGES}


def test_venue_gauges_follow_the_served_proposal(client: httpx.Client) -> None:
    plan = rebalance(client, apply=False)
    assert plan["status"] == "rebalance"
    current, target = plan["current_weights"], plan["target_weights"]
    assert isinstance(current, dict) and isinstance(target, dict) and current != target
    eth = float(plan["portfolio_eth"])  # type: ignore[arg-type]
    problem = plan["problem"]
    assert isinstance(problem, dict)
    yields = dict(zip(problem["venue_order"], problem["net_yield"], strict=True))

    dry = scrape(client)
    assert dry["aggregator_venue_weight"] == pytest.approx(current)  # a dry run does not move the book
    assert dry["aggregator_venue_exposure_eth"] == pytest.approx({v: w * eth for v, w in current.items()})
    assert dry["aggregator_venue_target_weight"] == pytest.approx(target)
    assert dry["aggregator_venue_net_yield"] == pytest.approx(yields)
    assert {"lido-steth", "kelp-rseth"} <= set(dry["aggregator_venue_net_yield"])
    assert any(v > 0 for v in dry["aggregator_venue_net_yield"].values())

    applied = rebalance(client, apply=True)
    after = scrape(client)
    held = applied["target_weights"]
    assert isinstance(held, dict)
    assert after["aggregator_venue_weight"] == pytest.approx(held)  # applied: the book now holds the target
    assert after["aggregator_venue_exposure_eth"] == pytest.approx({v: w * eth for v, w in held.items()})
