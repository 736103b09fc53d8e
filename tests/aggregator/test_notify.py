"""Webhook notification: delivered with retries, and never in the way of a cycle."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from structlog.testing import capture_logs

from aggregator.service import Service
from aggregator.settings import Settings, load_settings
from tests.fixture_server import FixtureServer, Reply


def _settings(demo_config: Callable[..., Path], url: str) -> Settings:
    return load_settings(
        demo_config(
            lambda t: t + f'\n[notify]\nwebhook_url = "{url}"\nbackoff_seconds = 0.05\ntimeout_seconds = 2\n'
        )
    )


def test_each_proposal_is_posted_as_json_after_a_retry(demo_config: Callable[..., Path]) -> None:
    """The webhook answers 500 once, then 200: the proposal arrives, as JSON, on the second attempt."""
    with FixtureServer() as server:
        server.routes["/hook"] = [Reply(b"{}", status=500), Reply(b"{}")]
        service = Service(_settings(demo_config, f"{server.url}/hook"))
        with capture_logs() as logs:
            result = service.rebalance("cli")
            deadline = time.monotonic() + 10
            while len(server.bodies["/hook"]) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert service.notifier is not None
            service.notifier.close()
    body = json.loads(server.bodies["/hook"][-1])
    assert body["proposal"] == result.run_id and body["mode"] == "dry_run"
    assert len(body["moves"]) == len(result.plan.moves) and body["moves"][0]["amount_eth"] > 0
    assert any(e["event"] == "notify_sent" and e["attempts"] == 2 for e in logs)


def test_a_dead_webhook_never_delays_the_cycle(demo_config: Callable[..., Path]) -> None:
    """Nobody listening: the rebalance returns as fast as without a webhook; delivery gives up in the background."""
    service = Service(_settings(demo_config, "http://127.0.0.1:9/hook"))
    start = time.monotonic()
    service.rebalance("cli")
    assert time.monotonic() - start < 5
    with capture_logs() as logs:
        assert service.notifier is not None
        service.notifier.close(timeout=10)
    assert any(e["event"] == "notify_failed" for e in logs)
