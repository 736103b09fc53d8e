"""Sources flapping (up, down, slow, garbled, absurd) over 200 rebalance cycles of one long-lived service.

Five real HTTP adapters are served their recorded payloads from a local server whose answer changes every cycle
(seeded). The service runs on a clock that moves 15 minutes a cycle, as the daemon's would. Every cycle is checked
against what the sources did: a failing source contributes nothing, an absurd value is rejected, a source is skipped
exactly while its circuit breaker is open (modelled here independently), the optimizer sees exactly the yields that
were good this cycle, and a cycle with nothing usable is recorded and logged as skipped, never optimised.
"""

from __future__ import annotations

import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from aggregator.core.errors import NoRatesError
from aggregator.service import Service
from aggregator.settings import Settings
from tests.adapters.cases import HTTP_CASES
from tests.adapters.test_contract import http_settings
from tests.fixture_server import FixtureServer
from tests.helpers.faults import FAILING, FAULTS, scripted_reply

CYCLES = 200
STEP = timedelta(minutes=15)
START = datetime(2026, 9, 14, 13, tzinfo=UTC)  # after the newest observation in the recorded payloads
COOLDOWN = timedelta(minutes=30)
BREAKER_FAILURES = 3
CASES = {
    c.adapter: c for c in HTTP_CASES if c.adapter in {"lido", "rocketpool", "coinbase", "binance", "kelp"}
}
WEIGHTS = (0.55, 0.15, 0.1, 0.1, 0.1)  # of FAULTS


def _settings(url: str, db: Path) -> Settings:
    venues: list[dict[str, Any]] = [{"id": "eth", "kind": "idle"}]
    sources: dict[str, Any] = {}
    for name, case in CASES.items():
        venues.append(
            {
                "id": f"v-{name}",
                "parent": "eth",
                "kind": "liquid_staking",
                "exit_days": 2,
                "components": [{"name": "base", "quotes": [{"source": name, "key": case.key}]}],
                "risk_nodes": [name],
            }
        )
        sources[name] = http_settings(
            case,
            f"{url}/{name}",
            timeout_seconds=0.6,  # a slow answer takes 1.2 s; 0.25 s let a loaded CI machine time out
            # the connect itself, so the request never reached the server
            max_attempts=1,
            breaker_failures=BREAKER_FAILURES,
            breaker_cooldown_minutes=COOLDOWN.total_seconds() / 60,
            max_age_hours=24 * 800,
        )
    return Settings.model_validate(
        {
            "portfolio": {"holdings_eth": {"eth": 100.0}},
            "venues": venues,
            "risk_nodes": [{"id": name, "p": 0.01, "lgd": 0.2} for name in CASES],
            "limits": {"min_move_eth": 0.5, "min_improvement_bps": 0.1},
            "sources": sources,
            "rates": {"smoothing_days": 0},
            "database": {"url": f"sqlite:///{db}"},
        }
    )


class Breakers:
    """The documented breaker: `failures` failed cycles in a row open it for `cooldown`, then one try."""

    def __init__(self) -> None:
        self.failed: dict[str, int] = dict.fromkeys(CASES, 0)
        self.opened: dict[str, datetime | None] = dict.fromkeys(CASES)

    def skips(self, name: str, now: datetime) -> bool:
        opened = self.opened[name]
        return opened is not None and now - opened < COOLDOWN

    def record(self, name: str, ok: bool, now: datetime) -> None:
        if ok:
            self.failed[name], self.opened[name] = 0, None
            return
        self.failed[name] += 1
        if self.opened[name] is not None or self.failed[name] >= BREAKER_FAILURES:
            self.opened[name] = now


def test_two_hundred_cycles_of_flapping_sources(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    clock = {"now": START}
    model = Breakers()
    seen = {"skipped": 0, "no_rates": 0, "proposals": 0, "rejected": 0, "failed": 0}
    with FixtureServer() as server:
        settings = _settings(server.url, tmp_path / "flap.sqlite")
        service = Service(settings, now=lambda: clock["now"])
        for cycle in range(CYCLES):
            now = clock["now"]
            everything_down = cycle % 40 == 39
            faults = {name: "down" if everything_down else rng.choices(FAULTS, WEIGHTS)[0] for name in CASES}
            for name, case in CASES.items():
                server.routes[f"/{name}{case.path}"] = [scripted_reply(case, faults[name])]
            hits = {name: server.hits[f"/{name}{case.path}"] for name, case in CASES.items()}
            with capture_logs() as logs:
                try:
                    result = service.rebalance("schedule")
                except NoRatesError:
                    result = None
            events = [e["event"] for e in logs]
            skipped = {e["source"] for e in logs if e["event"] == "source_skipped"}
            # A request the client gave up on may reach the server's count late under load: wait for every
            # source that was asked this cycle, so that no count leaks into the next one.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(
                server.hits[f"/{n}{c.path}"] == hits[n] for n, c in CASES.items() if n not in skipped
            ):
                time.sleep(0.01)
            expected_skips = {name for name in CASES if model.skips(name, now)}
            assert skipped == expected_skips, f"cycle {cycle}: breaker skips"
            good: dict[str, float] = {}
            for name, case in CASES.items():
                called = server.hits[f"/{name}{case.path}"] - hits[name]
                if name in skipped:
                    assert called == 0, f"cycle {cycle}: {name} was called with its circuit open"
                    continue
                assert called == 1, f"cycle {cycle}: {name} called {called} times"
                model.record(name, faults[name] not in FAILING, now)
                if faults[name] == "up":
                    good[f"v-{name}"] = case.expected
            failed = {e["source"] for e in logs if e["event"] == "source_failed"}
            assert failed == {n for n in CASES if n not in skipped and faults[n] in FAILING}, f"cycle {cycle}"
            rejected = {e["source"] for e in logs if e["event"] == "quote_rejected"}
            assert rejected == {n for n in CASES if n not in skipped and faults[n] == "absurd"}, (
                f"cycle {cycle}"
            )
            seen["skipped"] += len(skipped)
            seen["failed"] += len(failed)
            seen["rejected"] += len(rejected)
            if not good:
                assert result is None and "rebalance_skipped" in events, (
                    f"cycle {cycle}: optimised on nothing"
                )
                seen["no_rates"] += 1
            else:
                assert result is not None, f"cycle {cycle}: good yields {good} but no plan"
                yields = result.plan.problem.inputs.yields
                assert {v: c["base"] for v, c in yields.items()} == pytest.approx(good, rel=1e-12)
                assert "rebalance_completed" in events
                seen["proposals"] += 1
            clock["now"] = now + STEP

    # every state was visited, not just the happy path
    assert (
        seen["skipped"] > 0
        and seen["no_rates"] >= CYCLES // 40
        and seen["rejected"] > 0
        and seen["failed"] > 0
    )
    with sqlite3.connect(tmp_path / "flap.sqlite") as con:
        assert con.execute("pragma integrity_check").fetchone() == ("ok",)
        assert con.execute("select count(*) from collections").fetchone() == (CYCLES,)
        assert con.execute("select count(*) from proposals").fetchone() == (seen["proposals"],)
        assert con.execute("select count(*) from leases").fetchone() == (0,)
        orphans = con.execute(
            "select count(*) from proposals p left join collections c on p.collection_id = c.id where c.id is null"
        ).fetchone()
        assert orphans == (0,)
