"""The daemon as a real subprocess: it proposes on start, logs JSON lines, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, slow_source, start_daemon
from tests.fixture_server import FixtureServer
from tests.helpers.daemon import read_until

_read_until = read_until  # other tests import it from here


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_daemon_proposes_on_start_and_stops_cleanly(
    demo_config: Callable[..., Path], sig: signal.Signals
) -> None:
    """`aggregator run` logs a real proposal from the snapshot, serves it over HTTP, then exits 0 on the signal."""
    port = free_port()
    env = {"AGGREGATOR_API__PORT": str(port), "AGGREGATOR_API__TOKEN": "s3cret-token-value"}
    with start_daemon(demo_config(), env) as proc:
        _check(proc, sig, port)


def _check(proc: subprocess.Popen[str], sig: signal.Signals, port: int) -> None:
    try:
        lines = _read_until(proc, "cycle_finished")
        lines = [x for x in lines if x["event"] != "store_claimed"]  # a fresh store names its config first
        events = [x["event"] for x in lines]
        assert events[:2] == ["api_started", "daemon_started"]
        assert lines[0]["host"] == "127.0.0.1"
        proposals = httpx.get(f"http://127.0.0.1:{port}/api/v1/proposals", timeout=10).json()
        assert [p["trigger"] for p in proposals] == ["start"]
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["last_successful_cycle"]
        assert "move_proposed" in events
        summary = next(x for x in lines if x["event"] == "rebalance_completed")
        assert (
            summary["status"] == "rebalance" and summary["trigger"] == "start" and summary["dry_run"] is True
        )
        proc.send_signal(sig)
        rest = _read_until(proc, "daemon_stopped", timeout=30)
        assert rest[0]["event"] == "daemon_stopping" and rest[0]["signal"] == sig.name
        assert proc.wait(timeout=30) == 0
        assert "s3cret-token-value" not in json.dumps(lines + rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


DEAD_SOURCES = """
[portfolio]
holdings_eth = { eth = 100.0, lido-steth = 100.0 }

[schedule]
rates_every_minutes = 0.01
rebalance_on_start = true

[sources.llama]
adapter = "defillama"
base_url = "http://127.0.0.1:9"
timeout_seconds = 0.5
max_attempts = 2
backoff_base_seconds = 0.01
breaker_failures = 3

[[venues]]
id = "eth"
kind = "idle"

[[venues]]
id = "lido-steth"
parent = "eth"
kind = "liquid_staking"
risk_nodes = ["lido"]
components = [{ name = "base", quotes = [{ source = "llama", key = "lido/Ethereum/STETH" }] }]

[[risk_nodes]]
id = "lido"
p = 0.005
lgd = 0.1
"""


def test_daemon_keeps_cycling_with_every_source_down_and_proposes_nothing(tmp_path: Path) -> None:
    """All sources dead: each cycle is logged with the failure, the rebalance is skipped, the breaker opens,
    the daemon keeps running and still stops cleanly."""
    cfg = tmp_path / "dead.toml"
    cfg.write_text(DEAD_SOURCES)
    env: dict[str, str] = {}
    with start_daemon(cfg, env) as proc:
        try:
            lines = _read_until(proc, "source_skipped", timeout=60)
            proc.send_signal(signal.SIGTERM)
            lines += _read_until(proc, "daemon_stopped", timeout=30)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    events = [x["event"] for x in lines]
    assert "rebalance_skipped" in events and "circuit_opened" in events
    assert events.count("rates_collected") >= 2
    assert "move_proposed" not in events and "rebalance_completed" not in events


def test_sigterm_abandons_a_cycle_past_the_shutdown_bound(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A cycle stuck on a slow source: SIGTERM stops the daemon within the bound, exit 0, and the store holds
    nothing of the abandoned cycle."""
    with FixtureServer() as server:
        slow = slow_source(server, 30, timeout=60)
        cfg = demo_config(
            lambda t: slow(t).replace(
                "misfire_grace_seconds = 300", "misfire_grace_seconds = 300\nshutdown_timeout_seconds = 1"
            )
        )
        env = {
            "AGGREGATOR_API__PORT": str(free_port()),
            "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/d.sqlite",
        }
        with start_daemon(cfg, env) as proc:
            try:
                _read_until(proc, "daemon_started")
                deadline = time.monotonic() + 30
                while server.hits["/slow/pools"] < 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
                start = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                rest = _read_until(proc, "daemon_stopped", timeout=30)
                assert proc.wait(timeout=30) == 0
                assert time.monotonic() - start < 10
            finally:
                if proc.poll() is None:
                    proc.kill()
    assert "cycle_abandoned" in [x["event"] for x in rest]
    con = sqlite3.connect(tmp_path / "d.sqlite")
    assert con.execute("select count(*) from proposals").fetchone() == (0,)
    assert con.execute("select count(*) from collections").fetchone() == (0,)


def test_kill_9_mid_cycle_then_the_next_start_uses_the_store(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The daemon killed (SIGKILL) inside its start-up cycle leaves an intact store with no trace of that cycle and
    a lease held by a dead process; the next start takes the lease over and records its proposal."""
    with FixtureServer() as server:
        cfg = demo_config(slow_source(server, 2))
        env = {
            "AGGREGATOR_API__PORT": str(free_port()),
            "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/k.sqlite",
        }
        with start_daemon(cfg, env) as first:
            _read_until(first, "cycle_started")
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        con = sqlite3.connect(tmp_path / "k.sqlite")
        assert con.execute("pragma integrity_check").fetchone() == ("ok",)
        assert con.execute("select count(*) from proposals").fetchone() == (0,)
        assert con.execute("select count(*) from leases").fetchone() == (1,)  # left by the dead process
        con.close()
        with start_daemon(cfg, env) as second:
            try:
                lines = _read_until(second, "cycle_finished", timeout=60)
                second.send_signal(signal.SIGTERM)
                _read_until(second, "daemon_stopped", timeout=30)
                assert second.wait(timeout=30) == 0
            finally:
                if second.poll() is None:
                    second.kill()
    assert any(x["event"] == "rebalance_completed" and x["trigger"] == "start" for x in lines)
    con = sqlite3.connect(tmp_path / "k.sqlite")
    assert con.execute("select count(*) from proposals").fetchone() == (1,)
    assert con.execute("select count(*) from leases").fetchone() == (0,)


def test_a_scheduled_run_that_cannot_start_is_logged(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """On an interval shorter than a cycle, each run skipped because the previous one still runs is logged as
    `cycle_missed` with its reason, never dropped silently."""
    with FixtureServer() as server:
        cfg = demo_config(slow_source(server, 1.0))
        env = {
            "AGGREGATOR_API__ENABLED": "false",
            "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/m.sqlite",
            "AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": "0.004",
        }
        with start_daemon(cfg, env) as proc:
            try:
                missed = _read_until(proc, "cycle_missed", timeout=30)[-1]
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
    assert missed["job"] == "rebalance" and missed["reason"] == "the previous run of this job is still going"
    assert "scheduled_at" in missed
