"""Alerts through Apprise, delivered to a real HTTP endpoint on 127.0.0.1 (Apprise's json:// service): a readable
message per proposal; a source down past its breaker told once while it lasts, then "resolved"; a budget the
current book breaks; the chain book drifting from the expected one; the rate limit's summary of what it held."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from aggregator.events.alerts import Alerter, Message, Throttle, source_conditions
from aggregator.events.budgets import breaches
from aggregator.rates.breaker import SourceHealth
from aggregator.rates.collect import RateBook
from aggregator.service import Service
from aggregator.settings import load_settings
from aggregator.settings.alerts import AlertSettings
from tests.conftest import copy_demo
from tests.execution.test_chain_book import TREASURY, Chain
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


def test_book_drift_is_told_once_then_resolved(tmp_path: Path) -> None:
    """The chain (a local JSON-RPC server) holds another book than the demo config expects: one `book:drift` alert
    naming the venues, however many cycles see it; once the expected book is the chain's: one "resolved"."""
    with FixtureServer() as server:
        server.rpc["/rpc"] = Chain()
        server.routes["/alerts"] = [Reply(b"{}")]
        url = server.url.replace("http://", "json://") + "/alerts"
        config = copy_demo(
            tmp_path,
            lambda t: (
                t.replace(
                    "[portfolio]\n", f'[portfolio]\naddress = "{TREASURY}"\nrpc_url = "{server.url}/rpc"\n', 1
                )
                + f'\n[alerts]\nurls = ["{url}"]\nproposals = "none"\n'
            ),
        )
        settings = load_settings(config)
        service = Service(settings)
        with capture_logs() as logs:
            service.rebalance("cli")  # a whole cycle: the drift is seen where the plan reads the chain
        expected = dict(settings.portfolio.holdings_eth)
        found = service.chain_position(settings, expected, ())  # the same drift again: quiet
        assert found is not None
        holdings, flights = found
        service.chain_position(settings, holdings, flights)  # the expected book is now the chain's
        service.close()
        got = [m for m in _received(server, 2) if "book:drift" in m["title"]]
    assert [m["title"] for m in got] == [
        "restaking-aggregator alert: book:drift",
        "restaking-aggregator resolved: book:drift",
    ]
    [drift] = [e for e in logs if e["event"] == "book_drift"]  # the message says what the log says
    text = got[0]["message"]
    assert text.startswith(f"the book on chain at block {drift['block']} differs from the expected book")
    assert drift["venues"]["eth"]["expected"] == 1000.0
    for venue, d in drift["venues"].items():
        assert f"{venue} expected {d['expected']:.4f} ETH, chain {d['chain']:.4f} ETH" in text
    assert drift["in_flight_chain_eth"] > 0
    assert (
        f"in flight expected {drift['in_flight_expected_eth']:.4f} ETH, "
        f"chain {drift['in_flight_chain_eth']:.4f} ETH" in text
    )
    assert got[0]["type"] == "failure" and got[1]["type"] == "success"


def test_the_throttle_holds_the_overflow_and_summarises_it_when_the_window_has_room() -> None:
    now = [0.0]
    throttle = Throttle(2, 60.0, clock=lambda: now[0])
    messages = [Message(f"m{i}", "") for i in range(5)]
    assert [throttle.admit(m) for m in messages] == [True, True, False, False, False]
    assert throttle.summary() is None  # no room yet
    assert throttle.wait() == pytest.approx(60.0)
    now[0] = 30.0
    assert throttle.wait() == pytest.approx(30.0)
    now[0] = 60.0
    summary = throttle.summary()
    assert summary is not None and summary.title.endswith("3 alert message(s) held back by the rate limit")
    assert summary.body.splitlines()[1:] == ["- m2", "- m3", "- m4"]
    assert "limit of 2 per 60 s" in summary.body
    assert throttle.held == [] and throttle.wait() is None
    assert throttle.admit(Message("m5", ""))  # the summary took one of the two places, this one the other
    assert not throttle.admit(Message("m6", ""))
    forced = throttle.summary(force=True)  # at close(): told even without room
    assert forced is not None and forced.body.endswith("- m6")


def test_the_rate_limit_sends_the_first_messages_then_one_summary_through_apprise() -> None:
    """Five conditions at once against a limit of two per second: the endpoint receives the first two, then (when
    the window has room, before close) one summary naming the other three, and nothing else."""
    with FixtureServer() as server:
        server.routes["/alerts"] = [Reply(b"{}")]
        url = server.url.replace("http://", "json://") + "/alerts"
        alerter = Alerter(AlertSettings(urls=(SecretStr(url),), max_messages=2, window_seconds=1.0))
        alerter.update("sources", {f"source:s{i}": f"source s{i} is down" for i in range(5)})
        got = _received(server, 3)
        assert alerter.close(30)
        got = _received(server, 3)
        assert len(server.bodies["/alerts"]) == 3
    assert [m["title"] for m in got[:2]] == [
        "restaking-aggregator alert: source:s0",
        "restaking-aggregator alert: source:s1",
    ]
    assert got[2]["title"] == "restaking-aggregator: 3 alert message(s) held back by the rate limit"
    assert got[2]["type"] == "warning"
    assert [line for line in got[2]["message"].splitlines() if line.startswith("- ")] == [
        "- restaking-aggregator alert: source:s2",
        "- restaking-aggregator alert: source:s3",
        "- restaking-aggregator alert: source:s4",
    ]
