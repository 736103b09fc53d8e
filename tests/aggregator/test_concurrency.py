"""Concurrent triggers: the daemon's schedule, API calls and CLI commands, all at once on one database, never run
two cycles at the same time."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.aggregator.test_daemon import _read_until
from tests.conftest import AGGREGATOR, clean_env, free_port, slow_source, start_daemon
from tests.fixture_server import FixtureServer

TOKEN = "concurrency-token"


def _intervals(events: list[dict[str, Any]]) -> list[tuple[datetime, datetime, str]]:
    starts = {e["lease"]: e for e in events if e["event"] == "cycle_started"}
    ends = {e["lease"]: e for e in events if e["event"] == "cycle_finished"}
    assert starts.keys() == ends.keys()
    return sorted(
        (
            datetime.fromisoformat(starts[k]["timestamp"]),
            datetime.fromisoformat(ends[k]["timestamp"]),
            starts[k]["trigger"],
        )
        for k in starts
    )


def test_schedule_api_and_cli_never_overlap(demo_config: Callable[..., Path], tmp_path: Path) -> None:
    """A start-up cycle, three API rebalances and three CLI rebalances, each slowed by a 1 s source: seven
    cycles, one after another."""
    with FixtureServer() as server:
        cfg = demo_config(slow_source(server, 1))
        port = free_port()
        env = {
            "AGGREGATOR_API__PORT": str(port),
            "AGGREGATOR_API__TOKEN": TOKEN,
            "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/c.sqlite",
        }
        with start_daemon(cfg, env) as daemon:
            try:
                events = _read_until(daemon, "cycle_started")  # the start-up cycle is running
                statuses: list[int] = []

                def post() -> None:
                    r = httpx.post(
                        f"http://127.0.0.1:{port}/api/v1/rebalance",
                        json={"wait_seconds": 60},
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=120,
                    )
                    statuses.append(r.status_code)

                posters = [threading.Thread(target=post) for _ in range(3)]
                clis = [
                    subprocess.Popen(
                        [AGGREGATOR, "rebalance", "--wait", "60", "--config", str(cfg)],
                        env=clean_env(env),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(3)
                ]
                for t in posters:
                    t.start()
                cli_logs = []
                for c in clis:
                    _, err = c.communicate(timeout=120)
                    assert c.returncode == 0, err[-1000:]
                    cli_logs += [json.loads(line) for line in err.splitlines() if line.startswith("{")]
                for t in posters:
                    t.join(timeout=120)
                assert statuses == [200, 200, 200]
                daemon.send_signal(signal.SIGTERM)
                events += _read_until(daemon, "daemon_stopped", timeout=60)
            finally:
                if daemon.poll() is None:
                    daemon.kill()
    cycles = _intervals(events + cli_logs)
    assert sorted(t for _, _, t in cycles) == ["api", "api", "api", "cli", "cli", "cli", "start"]
    for (_, end, _), (start, _, _) in itertools.pairwise(cycles):
        assert end <= start, cycles
