"""SIGHUP reloads the config of a running daemon; a bad file is logged and the running config keeps working."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.helpers.daemon import read_until as _read_until
from tests.helpers.demo import free_port, start_daemon
from tests.helpers.fixture_server import FixtureServer, Reply

TOKEN = "reload-test-token-value"


def test_sighup_with_a_bad_file_keeps_the_running_config_and_a_good_one_applies(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = demo_config()
    good = config.read_text()
    port = free_port()
    env = {
        "AGGREGATOR_API__PORT": str(port),
        "AGGREGATOR_API__TOKEN": TOKEN,
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/reload.sqlite",
    }
    api = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with start_daemon(config, env) as proc:
        try:
            _read_until(proc, "cycle_finished")
            config.write_text(good.replace("cvar_budget = 0.06\n", "cvar_budget = 6\n"))
            proc.send_signal(signal.SIGHUP)
            failed = _read_until(proc, "config_reload_failed")[-1]
            assert "limits.cvar_budget = 6" in str(failed["error"]) and "looks like a percent" in str(
                failed["error"]
            )
            assert failed["kept"] == "running config"
            plan = httpx.post(f"{api}/api/v1/rebalance", json={}, headers=auth, timeout=60).json()["plan"]
            assert plan["problem"]["inputs"]["limits"]["cvar_budget"] == 0.06  # still the running config

            config.write_text(good.replace("cvar_budget = 0.06\n", "cvar_budget = 0.05\n"))
            proc.send_signal(signal.SIGHUP)
            _read_until(proc, "config_reloaded")
            plan = httpx.post(f"{api}/api/v1/rebalance", json={}, headers=auth, timeout=60).json()["plan"]
            assert plan["problem"]["inputs"]["limits"]["cvar_budget"] == 0.05
            assert plan["after"]["cvar"] <= 0.05 + 1e-7

            config.write_text(good.replace("[database]\n", "[database]\nbusy_timeout_seconds = 3\n"))
            proc.send_signal(signal.SIGHUP)
            refused = _read_until(proc, "config_reload_failed")[-1]
            assert refused["error"] == "[database] changed: only a restart applies them"
            assert httpx.get(f"{api}/health", timeout=10).json()["status"] == "ok"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_sighup_applies_a_changed_logging_level_and_webhook(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Issue 19: `[logging]` and `[notify]` changes were reported as reloaded and ignored. After the reload the
    next cycle logs at the new level (`optimizer_started` is a debug line) and its proposal reaches the new
    webhook."""
    config = demo_config()
    good = config.read_text()
    port = free_port()
    env = {
        "AGGREGATOR_API__PORT": str(port),
        "AGGREGATOR_API__TOKEN": TOKEN,
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/reload-applied.sqlite",
    }
    api = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with FixtureServer() as hook, start_daemon(config, env) as proc:
        hook.routes["/hook"] = [Reply(b"{}")]
        try:
            first = _read_until(proc, "cycle_finished")
            assert "optimizer_started" not in [e["event"] for e in first]  # info: no debug lines yet
            config.write_text(
                good.replace('[logging]\nlevel = "info"', '[logging]\nlevel = "debug"')
                + f'\n[notify]\nwebhook_url = "{hook.url}/hook"\n'
            )
            proc.send_signal(signal.SIGHUP)
            reloaded = _read_until(proc, "config_reloaded")[-1]
            assert reloaded["applied"] == ["logging", "notify"]
            response = httpx.post(f"{api}/api/v1/rebalance", json={}, headers=auth, timeout=60)
            assert response.status_code == 200, response.text
            run_id = response.json()["proposal"]
            after = _read_until(proc, "notify_sent")
            assert "optimizer_started" in [e["event"] for e in after]
            assert json.loads(hook.bodies["/hook"][-1])["proposal"] == run_id
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
