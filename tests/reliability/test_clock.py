"""The wall clock jumping (an NTP step, a VM resumed, an operator fixing the date) while the service runs.

Each test drives a long-lived service or store on a clock it controls and moves that clock back or forward between
cycles, as the daemon's `datetime.now` would move."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from aggregator.coordination import Leases
from aggregator.core.errors import NoRatesError
from aggregator.service import Service
from aggregator.settings import Settings
from aggregator.store import Store
from tests.adapters.cases import FIXTURES, HTTP_CASES, LIDO_TS, one_source_settings
from tests.adapters.test_contract import http_settings
from tests.adapters.test_faults import _set
from tests.fixture_server import FixtureServer, Reply

LIDO = next(c for c in HTTP_CASES if c.adapter == "lido")
PATH = LIDO.path
T0 = LIDO_TS + timedelta(days=2)
STEP = timedelta(minutes=15)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _apr(percent: float) -> Reply:
    doc = json.loads((FIXTURES / LIDO.fixture).read_text())
    return Reply(json.dumps(_set(doc, LIDO.value_path, percent)).encode())


def _settings(url: str, db: Path, **extra: object) -> Settings:
    source = http_settings(
        LIDO,
        url,
        timeout_seconds=0.5,
        max_attempts=1,
        breaker_failures=3,
        breaker_cooldown_minutes=30,
        max_age_hours=24 * 5,
    )
    base = one_source_settings(source, LIDO.key).model_dump(mode="json", exclude_none=True)
    base["database"] = {"url": f"sqlite:///{db}"}
    base["limits"] = {"min_move_eth": 0.01}
    return Settings.model_validate(base | extra)


def _cycle(service: Service) -> tuple[float | None, list[MutableMapping[str, Any]]]:
    """One rebalance: the yield the optimizer saw (None if it did not run) and the log."""
    with capture_logs() as logs:
        try:
            plan = service.rebalance("schedule").plan
        except NoRatesError:
            return None, logs
    return plan.problem.inputs.yields["v"]["base"], logs


def test_a_clock_set_back_does_not_keep_an_open_circuit_shut(tmp_path: Path) -> None:
    """A breaker opened at T stays open until T + cooldown; a clock set back a day must not make that a day more."""
    clock = Clock(T0)
    with FixtureServer() as server:
        service = Service(_settings(server.url, tmp_path / "c.sqlite"), now=clock)
        server.routes[PATH] = [Reply(b"{}", status=503)]
        for _ in range(3):
            assert _cycle(service)[0] is None
            clock.at += STEP
        _, logs = _cycle(service)  # within the cooldown: skipped, not called
        assert [e["event"] for e in logs if e["event"] == "source_skipped"] == ["source_skipped"]
        assert server.hits[PATH] == 3

        server.routes[PATH] = [_apr(3.0)]
        clock.at -= timedelta(days=1)
        seen, logs = _cycle(service)
        assert server.hits[PATH] == 4, "the source was not tried after the clock went back"
        assert seen == pytest.approx(0.03)
        assert not [e for e in logs if e["event"] == "source_skipped"]


def test_yields_from_the_future_are_not_averaged_and_proposals_keep_their_order(tmp_path: Path) -> None:
    """After the clock goes back, rows stamped later than now stay out of the smoothing window, and the newest
    proposal is still listed first."""
    clock = Clock(T0)
    with FixtureServer() as server:
        service = Service(
            _settings(server.url, tmp_path / "c.sqlite", rates={"smoothing_days": 7}), now=clock
        )
        server.routes[PATH] = [_apr(2.0)]
        assert _cycle(service)[0] == pytest.approx(0.02)
        clock.at += STEP
        server.routes[PATH] = [_apr(2.8)]
        assert _cycle(service)[0] == pytest.approx(0.024)  # the mean of both

        clock.at -= timedelta(hours=6)
        server.routes[PATH] = [_apr(2.6)]
        before = {p.id for p in service.store.proposals(10)}
        assert _cycle(service)[0] == pytest.approx(0.026)  # the later-stamped 2 % and 2.8 % are not "earlier"
        newest = service.store.proposals(10)
        assert len(newest) == 3 and newest[0].id not in before
        assert newest[0].created_at == T0 + STEP - timedelta(hours=6)

        clock.at = T0 + timedelta(hours=1)  # forward again: every stored row is now in the past
        server.routes[PATH] = [_apr(2.2)]
        assert _cycle(service)[0] == pytest.approx((0.02 + 0.028 + 0.026 + 0.022) / 4)


def test_a_clock_jumping_past_max_age_rejects_every_quote_until_it_is_right(tmp_path: Path) -> None:
    """Jumped 10 days ahead, the recorded quote is stale and nothing is optimised; jumped back before the
    observation, it is "from the future" and rejected as well; on the right time again the cycle proposes."""
    clock = Clock(T0)
    with FixtureServer() as server:
        service = Service(_settings(server.url, tmp_path / "c.sqlite"), now=clock)
        server.routes[PATH] = [_apr(3.0)]
        assert _cycle(service)[0] == pytest.approx(0.03)
        for at, reason in (
            (T0 + timedelta(days=10), "stale: observed"),
            (LIDO_TS - timedelta(days=1), "h in the future (clock skew or bad timestamp)"),
        ):
            clock.at = at
            seen, logs = _cycle(service)
            assert seen is None
            rejected = [e for e in logs if e["event"] == "quote_rejected"]
            assert len(rejected) == 1 and reason in str(rejected[0]["reason"])
            assert any(e["event"] == "rebalance_skipped" for e in logs)
        clock.at = T0 + STEP
        assert _cycle(service)[0] == pytest.approx(0.03)
        assert len(service.store.proposals(10)) == 2  # the two skipped cycles proposed nothing


def test_a_clock_jump_never_hands_a_live_holders_lease_to_another_cycle(tmp_path: Path) -> None:
    """On this host the lease expires on the monotonic clock: a wall clock moved two hours ahead (past the lease's
    10-minute lifetime) does not free a live holder's lease; a clock moved back a day does not keep a dead holder's."""
    clock = Clock(T0)
    store = Store(f"sqlite:///{tmp_path}/lease.sqlite", now=clock)
    host = socket.gethostname()
    live = f"{host}:{os.getpid()}:running-cycle"
    assert Leases(store).acquire("rebalance", live, ttl_seconds=600)
    clock.at += timedelta(hours=2)
    assert not Leases(store).acquire("rebalance", f"{host}:{os.getpid()}:another", ttl_seconds=600)
    Leases(store).release("rebalance", live)

    dead = subprocess.Popen(["true"])
    dead.wait()
    assert Leases(store).acquire("rebalance", f"{host}:{dead.pid}:killed", ttl_seconds=600)
    clock.at -= timedelta(days=1)
    assert Leases(store).acquire("rebalance", f"{host}:{os.getpid()}:next", ttl_seconds=600)


def test_a_lease_held_on_another_host_expires_by_the_wall_clock(tmp_path: Path) -> None:
    """A holder elsewhere cannot be asked whether it runs: its lease lasts until its wall-clock expiry."""
    clock = Clock(datetime(2026, 11, 25, tzinfo=UTC))
    store = Store(f"sqlite:///{tmp_path}/lease.sqlite", now=clock)
    assert Leases(store).acquire("rebalance", "elsewhere:1:cycle", ttl_seconds=600)
    me = f"{socket.gethostname()}:{os.getpid()}:cycle"
    clock.at += timedelta(seconds=599)
    assert not Leases(store).acquire("rebalance", me, ttl_seconds=600)
    clock.at += timedelta(seconds=2)
    assert Leases(store).acquire("rebalance", me, ttl_seconds=600)
