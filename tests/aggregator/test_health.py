"""Health that means something: `/health` (a real uvicorn server) and `aggregator health` (a real subprocess
against a real daemon) report degraded, with the reason, once the last successful cycle is older than
`api.health_max_age_seconds`."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from aggregator.events.metrics import Metrics
from aggregator.interfaces.api.app import ApiServer, create_app
from aggregator.service import Service
from aggregator.settings import load_settings
from tests.aggregator.test_daemon import _read_until
from tests.conftest import AGGREGATOR, clean_env, free_port, start_daemon

TOKEN = "t0ken-for-tests-0123456789"
MAX_AGE = 600.0


class Clock:
    """Unix time, moved forward by the test (the API reads it through `clock=`)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def served(demo_config: Callable[..., Path]) -> Iterator[Callable[[Clock], httpx.Client]]:
    """Start an API over the demo config's database with a movable clock; several may share the database."""
    config = demo_config()
    servers: list[ApiServer] = []
    clients: list[httpx.Client] = []

    def start(clock: Clock) -> httpx.Client:
        settings = load_settings(config)
        metrics = Metrics()
        app = create_app(
            Service(settings, metrics=metrics),
            metrics,
            SecretStr(TOKEN),
            health_max_age_seconds=MAX_AGE,
            clock=clock,
        )
        server = ApiServer(app, "127.0.0.1", free_port())
        server.start()
        servers.append(server)
        clients.append(httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60))
        return clients[-1]

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


def test_health_degrades_when_no_cycle_succeeds_for_too_long(
    served: Callable[[Clock], httpx.Client],
) -> None:
    clock = Clock()
    client = served(clock)
    fresh = client.get("/health")
    assert fresh.status_code == 200 and fresh.json()["status"] == "ok"
    assert fresh.json()["max_age_seconds"] == MAX_AGE

    clock.offset = MAX_AGE + 5  # the API has been up past the limit and nothing has succeeded
    stale = client.get("/health")
    assert stale.status_code == 503
    body = stale.json()
    assert body["status"] == "degraded"
    assert "no cycle has succeeded since the API started" in body["reason"]
    assert "api.health_max_age_seconds=600" in body["reason"]

    clock.offset = 0.0
    done = client.post("/api/v1/rebalance", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert done.status_code == 200
    ok = client.get("/health")
    assert ok.status_code == 200 and ok.json()["last_successful_cycle"] is not None

    clock.offset = MAX_AGE + 5
    again = client.get("/health")
    assert again.status_code == 503
    assert again.json()["reason"].startswith("the last successful cycle was 6")


def test_a_restarted_api_counts_the_stored_proposal(served: Callable[[Clock], httpx.Client]) -> None:
    """After a restart the last success is the newest stored proposal, not 'never'."""
    first = served(Clock())
    assert first.post("/api/v1/rebalance", json={}, headers={"Authorization": f"Bearer {TOKEN}"}).is_success
    clock = Clock()
    second = served(clock)
    stored = second.get("/health").json()
    assert stored["status"] == "ok" and stored["last_successful_cycle"] is not None
    assert abs(stored["last_successful_cycle"] - time.time()) < 120
    clock.offset = MAX_AGE + 5
    assert "the last successful cycle was" in second.get("/health").json()["reason"]


def _health(config: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGGREGATOR), "health", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env({"AGGREGATOR_API__PORT": str(port)}),
        check=False,
    )


def test_cli_health_exits_1_with_the_reason_once_the_daemon_goes_stale(
    demo_config: Callable[..., Path],
) -> None:
    """A real daemon that never cycles (no start-up cycle, a daily schedule) with a 15 s limit: `aggregator
    health` exits 0 at first, then 1 naming the reason once 15 s have passed."""
    config = demo_config()
    port = free_port()
    env = {
        "AGGREGATOR_API__PORT": str(port),
        "AGGREGATOR_API__HEALTH_MAX_AGE_SECONDS": "15",
        "AGGREGATOR_SCHEDULE__REBALANCE_ON_START": "false",
        "AGGREGATOR_SCHEDULE__REBALANCE_CRON": "0 3 * * *",
    }
    with start_daemon(config, env) as proc:
        try:
            _read_until(proc, "daemon_started")
            first = _health(config, port)
            assert first.returncode == 0, first.stderr
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                done = _health(config, port)
                if done.returncode != 0:
                    break
                time.sleep(1)
            assert done.returncode == 1
            assert "degraded (HTTP 503)" in done.stderr
            assert "no cycle has succeeded since the API started" in done.stderr
            assert "api.health_max_age_seconds=15" in done.stderr
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def test_default_max_age_follows_the_schedule(demo_config: Callable[..., Path]) -> None:
    """Unset, the limit is twice the longest gap of the schedule plus the cycle timeout."""
    settings = load_settings(demo_config())  # every six hours, cycle_timeout 600 s by default
    assert settings.health_max_age_seconds == 2 * 6 * 3600 + settings.schedule.cycle_timeout_seconds
    weekly = settings.schedule.model_copy(update={"rebalance_cron": "0 3 * * 1"})
    assert weekly.longest_gap_seconds() == 7 * 86_400
    uneven = settings.schedule.model_copy(update={"rebalance_cron": "0 1,4 * * *"})
    assert uneven.longest_gap_seconds() == 21 * 3600
