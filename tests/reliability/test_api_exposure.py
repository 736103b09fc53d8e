"""The daemon's API against an outsider, with the real daemon as a subprocess: an empty or short token disables
writes (it used to match an absent header), listening beyond loopback without a token is refused at start, and
a flood of idle connections can neither keep /health out nor starve the cycles of file descriptors."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.interfaces.api.connections import ACCEPT_BACKLOG
from tests.conftest import AGGREGATOR, clean_env, free_port, start_daemon

FD_LIMIT = 1024  # the daemon's RLIMIT_NOFILE (soft and hard) in the flood test: a common default
FLOOD = 1100  # idle connections opened against it: more than it has descriptors (the figure)
LIMITED = (  # exec argv[1:] with RLIMIT_NOFILE at FD_LIMIT (soft and hard)
    "import os, resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT})); os.execv(sys.argv[1], sys.argv[1:])"
)


class Log:
    """The daemon's JSON log lines, read on a thread (so a full pipe never blocks the daemon)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        assert proc.stdout is not None
        self.stream = proc.stdout
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.stream:
            with self.changed:
                self.lines.append(json.loads(line))
                self.changed.notify_all()

    def wait_for(self, event: str, count: int = 1, since: int = 0, timeout: float = 60.0) -> int:
        """Wait until `count` lines of `event` appear after line `since`; the index after the last one."""
        with self.changed:
            ok = self.changed.wait_for(lambda: len(self.named(event, since)) >= count, timeout=timeout)
            assert ok, f"no {count} x {event} within {timeout} s; got {[x['event'] for x in self.lines]}"
            return self.lines.index(self.named(event, since)[count - 1]) + 1

    def named(self, event: str, since: int = 0) -> list[dict[str, Any]]:
        return [x for x in self.lines[since:] if x["event"] == event]


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def api_proposals(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("select count(*) from proposals where trigger = 'api'").fetchone()[0])


@pytest.mark.parametrize(
    ("token", "event"), [("", "api_token_missing"), ("short-token", "api_token_too_short")]
)
def test_an_empty_or_short_token_from_the_environment_refuses_writes(
    demo_config: Callable[..., Path], tmp_path: Path, token: str, event: str
) -> None:
    """AGGREGATOR_API__TOKEN="" (what docker-compose passed when unset) or 11 characters: the start-up logs why
    writes are off, and a POST without any Authorization header (which an empty token used to let through), or
    with exactly that short token, is refused with 403 and runs nothing."""
    port, db = free_port(), tmp_path / "api.sqlite"
    env = {
        "AGGREGATOR_API__PORT": str(port),
        "AGGREGATOR_API__TOKEN": token,
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{db}",
    }
    with start_daemon(demo_config(), env) as proc:
        try:
            log = Log(proc)
            log.wait_for("api_started")
            warned = log.named(event)
            assert warned and warned[0]["min_length"] == 16 and "AGGREGATOR_API__TOKEN" in warned[0]["fix"]
            url = f"http://127.0.0.1:{port}/api/v1/rebalance"
            for headers in ({}, {"Authorization": f"Bearer {token}".strip()}):
                response = httpx.post(url, json={"apply": True}, headers=headers, timeout=30)
                assert response.status_code == 403, response.text
                assert "AGGREGATOR_API__TOKEN" in response.json()["detail"]
            assert api_proposals(db) == 0
        finally:
            stop(proc)


@pytest.mark.parametrize(
    ("host", "token"),
    [("0.0.0.0", ""), ("0.0.0.0", "short-token"), ("", None)],
    ids=["empty", "short", "unset"],
)
def test_listening_beyond_loopback_without_a_token_is_a_config_error(
    demo_config: Callable[..., Path], tmp_path: Path, host: str, token: str | None
) -> None:
    """`aggregator run` with api.host 0.0.0.0 (or empty: every interface) and no usable token exits 3 before it
    listens, naming api.host, the token variable and what would be valid."""
    env = {"AGGREGATOR_API__HOST": host, "AGGREGATOR_API__PORT": str(free_port())}
    env |= {"AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path / 'bind.sqlite'}"}
    if token is not None:
        env["AGGREGATOR_API__TOKEN"] = token
    done = subprocess.run(
        [AGGREGATOR, "run", "--config", str(demo_config())],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    for needed in ("api.host", repr(host), "AGGREGATOR_API__TOKEN", "at least 16 characters", "127.0.0.1"):
        assert needed in done.stderr, done.stderr
    assert "api_started" not in done.stdout


def test_check_config_refuses_what_run_would(demo_config: Callable[..., Path]) -> None:
    """`check-config` with api.host 0.0.0.0 and no token: exit 3 with the same message as `run`."""
    done = subprocess.run(
        [AGGREGATOR, "check-config", "--config", str(demo_config())],
        env=clean_env({"AGGREGATOR_API__HOST": "0.0.0.0"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3 and "api.host = '0.0.0.0'" in done.stderr, done.stderr[-2000:]


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_flood_of_idle_connections_neither_blocks_health_nor_starves_the_cycles(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The daemon limited to 1,024 file descriptors, 1,100 idle connections opened against its API (before, it
    accepted until EMFILE: /health timed out and every cycle failed). Now it keeps at most api.max_connections
    (256) open, evicting the longest idle (logged, throttled), /health answers, and rebalances go on completing
    with every source read."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FLOOD + 100:  # this process holds the flood's client ends
        if hard != resource.RLIM_INFINITY and hard < FLOOD + 100:
            pytest.skip(f"needs {FLOOD + 100} file descriptors in the test process; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (FLOOD + 100, hard))
    port, db = free_port(), tmp_path / "flood.sqlite"
    env = {
        "AGGREGATOR_API__PORT": str(port),
        "AGGREGATOR_API__TOKEN": "flood-test-token-0123456789",
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{db}",
        "AGGREGATOR_API__HEADER_TIMEOUT_SECONDS": "120",  # the flood is evicted, not timed out
        "AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": "0.02",
    }

    idle: list[socket.socket] = []
    with subprocess.Popen(
        [sys.executable, "-c", LIMITED, AGGREGATOR, "run", "--config", str(demo_config())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(env),
    ) as proc:
        try:
            log = Log(proc)
            log.wait_for("cycle_finished")
            limits = Path(f"/proc/{proc.pid}/limits").read_text()
            assert any(
                line.startswith("Max open files") and f" {FD_LIMIT} " in line for line in limits.splitlines()
            )
            for _ in range(FLOOD):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            start = time.monotonic()
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json()["status"] == "ok"
            assert time.monotonic() - start < 5, "health was slow behind the idle connections"
            since = len(log.lines)
            log.wait_for("rebalance_completed", count=2, since=since)
            held = _fds(proc.pid)
            assert held <= 256 + 2 * ACCEPT_BACKLOG + 64, f"the daemon holds {held} descriptors, past its cap"
            after = [x["event"] for x in log.lines[since:]]
            failures = {
                "rebalance_failed",
                "rates_failed",
                "source_failed",
                "rebalance_skipped",
                "api_loop_error",
            }
            assert not failures & set(after), after
            evicted = log.named("api_connection_evicted")
            assert evicted and evicted[0]["max_connections"] == 256
            assert len(evicted) <= 3  # throttled: not one line per connection
        finally:
            for sock in idle:
                sock.close()
            stop(proc)
