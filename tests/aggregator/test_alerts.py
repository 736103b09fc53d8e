"""Alerts through Apprise, delivered to a real HTTP endpoint on 127.0.0.1 (Apprise's json:// service): a readable
message per proposal; a source down past its breaker told once while it lasts, then "resolved"; a budget the
current book breaks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from aggregator.events.alerts import Alerter, source_conditions
from aggregator.events.budgets import breaches
from aggregator.rates.breaker import SourceHealth
from aggregator.rates.collect import RateBook
from aggregator.service import Service
from aggregator.settings import load_settings
from aggregator.settings.alerts import AlertSettings
from tests.fixture_server import FixtureServer, Reply

SNAPSHOT = "demo-2026-09-14.json"


def _received(server: FixtureServer, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The first `count` alerts the endpoint received, waiting for them up to `timeout`."""
    deadline = time.monotonic() + timeout
    while len(server.bodies["/alerts"]) < count:
        assert time.monotonic() < deadline, f"{len(server.bodies['/alerts'])} of {count} alerts arrived"
        time.sleep(0.05)
    return [json.loads(b) for b in server.bodies["/alerts"]]


def _config(demo_config: Callable[..., Path], server: FixtureServer, extra: str = "") -> Path:
    url = server.url.replace("http://", "json://") + "/alerts"
    return demo_config(
        lambda t: (
            t.replace(
                "max_age_hours = 20000\n",
                "max_age_hours = 20000\nbreaker_failures = 1\nbreaker_cooldown_minutes = 0.0001\n",
                1,
            )
            + f'\n[alerts]\nurls = ["{url}"]\n{extra}'
        )
    )


def test_a_proposal_arrives_as_a_readable_message(demo_config: Callable[..., Path]) -> None:
    with FixtureServer() as server:
        server.routes["/alerts"] = [Reply(b"{}")]
        settings = load_settings(_config(demo_config, server))
        service = Service(settings)
        result = service.rebalance("cli")
        service.close()
        got = _received(server, 1)  # close() flushed the queue: everything sent is here
    plan = result.plan
    message = got[0]
    assert message["title"].startswith("restaking-aggregator: Rebalance proposed")
    body = message["message"]
    assert f"{plan.before.net_yield * 100:.2f} % → {plan.after.net_yield * 100:.2f} %" in body
    assert f"Why: {plan.reason}" in body
    assert f"aggregator show {result.run_id}" in body
    names = {v.id: v.name for v in settings.venues if v.name}
    first = plan.moves[0]
    assert f"{first.amount_eth:.4f} ETH" in body
    if first.to_venue in names:  # venue names, not ids, for people
        assert names[first.to_venue] in body
    # The demo's starting book breaks its CVaR budget and the lido node cap: each is its own alert.
    titles = [m["title"] for m in got[1:]]
    assert "restaking-aggregator alert: limit:CVaR 99%" in titles
    assert "restaking-aggregator alert: limit:node lido" in titles
    cvar = next(m for m in got if m["title"].endswith("limit:CVaR 99%"))
    assert cvar["message"] == (
        f"CVaR 99%: {plan.before.cvar * 100:.2f} % is above the limit {plan.problem.cvar_budget * 100:.2f} %"
    )


def test_a_source_down_is_told_once_then_resolved(demo_config: Callable[..., Path]) -> None:
    """The snapshot vanishes: one alert for the source past its breaker and one for no usable rate, however many
    collections see it; it comes back: one "resolved" each. The endpoint receives exactly that sequence."""
    with FixtureServer() as server:
        server.routes["/alerts"] = [Reply(b"{}")]
        config = _config(demo_config, server, 'proposals = "none"\n')
        snapshot = config.parent.parent / "data" / "snapshots" / SNAPSHOT
        service = Service(load_settings(config))
        service.collect("test")  # healthy: nothing to tell
        snapshot.rename(snapshot.with_suffix(".gone"))
        for _ in range(3):
            service.collect("test")
        snapshot.with_suffix(".gone").rename(snapshot)
        time.sleep(0.01)  # past the 6 ms breaker cooldown, so the source is tried again
        service.collect("test")
        service.close()
        got = _received(server, 2)
    titles = [m["title"] for m in got]
    assert titles == [
        "restaking-aggregator alert: source:demo",
        "restaking-aggregator resolved: source:demo",
    ], titles
    assert got[0]["type"] == "failure" and "source demo is down" in got[0]["message"]
    assert got[1]["type"] == "success" and got[1]["message"].startswith("resolved: source demo is down")


def test_no_usable_rate_from_any_source_is_a_condition() -> None:
    """A collection with no rate at all (every source failed or every quote rejected) names the failed ones."""
    book = RateBook(fetched_at=datetime.now(UTC), failed_sources={"demo": "gone", "assumptions": "stale"})
    found = source_conditions(book, SourceHealth())
    assert list(found) == ["rates:none"]
    assert "failed: assumptions, demo" in found["rates:none"]


def test_a_budget_breached_by_the_current_book_alerts(demo_config: Callable[..., Path]) -> None:
    """The demo's current book against a CVaR budget of a hundredth of its CVaR: the breach is named; against
    twice its CVaR: none."""
    settings = load_settings(demo_config())
    plan = Service(settings).rebalance("cli").plan
    tight = plan.model_copy(
        update={"problem": plan.problem.model_copy(update={"cvar_budget": plan.before.cvar / 100})}
    )
    found = breaches(tight)
    key = next(k for k in found if k.startswith("limit:CVaR"))
    assert "above the limit" in found[key]
    loose = plan.model_copy(
        update={"problem": plan.problem.model_copy(update={"cvar_budget": plan.before.cvar * 2})}
    )
    assert not any(k.startswith("limit:CVaR") for k in breaches(loose))


def test_a_condition_that_clears_resolves_once_through_apprise() -> None:
    """The Alerter alone over Apprise's json://: raise, repeat (quiet), clear (resolved)."""
    with FixtureServer() as server:
        server.routes["/alerts"] = [Reply(b"{}")]
        url = server.url.replace("http://", "json://") + "/alerts"
        alerter = Alerter(AlertSettings(urls=(SecretStr(url),)))
        alerter.update("cycle", {"cycle:failed": "a schedule cycle failed: disk full"})
        alerter.update("cycle", {"cycle:failed": "a schedule cycle failed: disk full again"})
        alerter.update("cycle", {})
        assert alerter.close(30)
        got = _received(server, 2)
    assert [m["title"] for m in got] == [
        "restaking-aggregator alert: cycle:failed",
        "restaking-aggregator resolved: cycle:failed",
    ]
    assert got[0]["message"] == "a schedule cycle failed: disk full"
