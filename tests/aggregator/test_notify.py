"""Webhook notification: delivered with retries, never in the way of a cycle, every delivery bounded by a total
deadline and ending in one log line (`notify_sent` or `notify_failed` with the reason), flushed before the CLI or
the daemon exits. Receivers that misbehave are real sockets on 127.0.0.1 that accept and then hang or drip."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
from structlog.testing import capture_logs

from aggregator.events.notify import Notifier
from aggregator.service import Service
from aggregator.settings import Settings, load_settings
from aggregator.settings.notify import NotifySettings
from tests.conftest import AGGREGATOR, clean_env, start_daemon
from tests.fixture_server import FixtureServer, Reply

Mode = Literal["hang", "drip", "ok"]


class RawReceiver:
    """A webhook receiver on a real socket. Connection n behaves as `modes[n]` (the last repeats): `hang` reads
    the request and never answers, `drip` sends a status line one byte every 0.2 s forever, `ok` answers 200."""

    def __init__(self, modes: list[Mode]) -> None:
        self.modes = modes
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            mode = self.modes[min(self.connections, len(self.modes) - 1)]
            self.connections += 1
            self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn, mode), daemon=True).start()

    def _serve(self, conn: socket.socket, mode: Mode) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)
            if mode == "ok":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                conn.close()
            elif mode == "drip":
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                    if self.stop.wait(0.2):
                        return
                    conn.sendall(bytes([byte]))
            else:
                self.stop.wait()

    def __enter__(self) -> RawReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.sock.close()
        for conn in self.open:
            with contextlib.suppress(OSError):
                conn.close()


def _wait_for(logs: Sequence[Mapping[str, Any]], event: str, count: int = 1, timeout: float = 30.0) -> None:
    """Until `count` log entries named `event` were captured (the worker logs from its own thread)."""
    deadline = time.monotonic() + timeout
    while sum(e["event"] == event for e in logs) < count:
        assert time.monotonic() < deadline, f"no {count}x {event} within {timeout}s: {logs}"
        time.sleep(0.02)


def _settings(demo_config: Callable[..., Path], url: str, extra: str = "timeout_seconds = 2\n") -> Settings:
    return load_settings(
        demo_config(lambda t: t + f'\n[notify]\nwebhook_url = "{url}"\nbackoff_seconds = 0.05\n{extra}')
    )


def test_each_proposal_is_posted_as_json_after_a_retry(demo_config: Callable[..., Path]) -> None:
    """The webhook answers 500 once, then 200: the proposal arrives, as JSON, on the second attempt."""
    with FixtureServer() as server:
        server.routes["/hook"] = [Reply(b"{}", status=500), Reply(b"{}")]
        service = Service(_settings(demo_config, f"{server.url}/hook"))
        with capture_logs() as logs:
            result = service.rebalance("cli")
            service.close()
    body = json.loads(server.bodies["/hook"][-1])
    assert body["proposal"] == result.run_id and body["mode"] == "dry_run"
    assert len(body["moves"]) == len(result.plan.moves) and body["moves"][0]["amount_eth"] > 0
    assert any(e["event"] == "notify_sent" and e["attempts"] == 2 for e in logs)


def test_a_hanging_webhook_never_delays_the_cycle(demo_config: Callable[..., Path]) -> None:
    """A receiver that accepts and never answers, with a minute allowed per attempt and per delivery: the
    rebalance returns long before that (it never waits for the webhook), and closing the service with a 1 s
    bound gives the delivery up then, logged as `notify_failed` with the reason."""
    with RawReceiver(["hang"]) as receiver:
        service = Service(
            _settings(demo_config, receiver.url, "timeout_seconds = 60\ndeadline_seconds = 60\n")
        )
        start = time.monotonic()
        service.rebalance("cli")
        assert time.monotonic() - start < 30
        assert receiver.connections <= 1
        with capture_logs() as logs:
            assert service.notifier is not None
            assert service.notifier.close(timeout=1.0)
    failed = next(e for e in logs if e["event"] == "notify_failed")
    assert failed["seconds"] < 30
    assert failed["reason"].startswith("the process is stopping; not delivered after")


@pytest.mark.parametrize("first", ["hang", "drip"])
def test_a_stuck_delivery_ends_at_its_deadline_and_the_next_one_goes_out(first: Mode) -> None:
    """The first connection hangs (or drips its status line a byte every 0.2 s, which no per-read timeout
    catches); each attempt may take 30 s, yet the delivery fails at its 1.5 s deadline with `notify_failed`
    and the next proposal is delivered right after it."""
    with RawReceiver([first, "ok"]) as receiver, capture_logs() as logs:
        notifier = Notifier(
            NotifySettings(
                webhook_url=receiver.url,
                timeout_seconds=30,
                max_attempts=1,
                backoff_seconds=0,
                deadline_seconds=1.5,
            )
        )
        notifier.send({"proposal": "p1"})
        notifier.send({"proposal": "p2"})
        _wait_for(logs, "notify_sent", timeout=60)
        notifier.close(timeout=5)
    failed = next(e for e in logs if e["event"] == "notify_failed")
    sent = next(e for e in logs if e["event"] == "notify_sent")
    assert failed["proposal"] == "p1" and failed["seconds"] < 1.5 + 10  # each attempt may take 30 s
    assert failed["reason"].startswith("deadline_seconds=1.5 passed after 1 attempt(s)")
    assert sent["proposal"] == "p2" and receiver.connections == 2


def test_attempts_running_out_are_logged_with_the_last_reason() -> None:
    """Every attempt answered 503: `notify_failed` says how many attempts failed and the last status."""
    with FixtureServer() as server, capture_logs() as logs:
        server.routes["/hook"] = [Reply(b"{}", status=503)]
        notifier = Notifier(
            NotifySettings(webhook_url=f"{server.url}/hook", max_attempts=3, backoff_seconds=0.01)
        )
        notifier.send({"proposal": "p1"})
        notifier.close(timeout=30)
    failed = next(e for e in logs if e["event"] == "notify_failed")
    assert failed["attempts"] == 3 and failed["reason"] == "3 attempts failed (last: HTTP 503)"
    assert server.hits["/hook"] == 3


def test_close_gives_up_what_is_left_at_its_bound_and_logs_each() -> None:
    """Closing with a 1 s bound while a delivery hangs (its own deadline is 60 s): close returns within the
    bound and every proposal still queued is logged as `notify_failed`, none lost silently."""
    with RawReceiver(["hang"]) as receiver, capture_logs() as logs:
        notifier = Notifier(NotifySettings(webhook_url=receiver.url, timeout_seconds=60, deadline_seconds=60))
        for n in range(3):
            notifier.send({"proposal": f"p{n}"})
        start = time.monotonic()
        assert notifier.close(timeout=1.0)
        took = time.monotonic() - start
    failed = [e for e in logs if e["event"] == "notify_failed"]
    assert took < 1.0 + 10  # a delivery may take 60 s
    assert [e["proposal"] for e in failed] == ["p0", "p1", "p2"]
    assert all(e["reason"].startswith("the process is stopping") for e in failed)


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_cli_rebalance_retries_its_webhook_before_exiting(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """`aggregator rebalance` whose webhook answers 500 first: the process retries before it exits and logs
    `notify_sent` (before, the retry died with the process and nothing was logged)."""
    with FixtureServer() as server:
        server.routes["/hook"] = [Reply(b"{}", status=500), Reply(b"{}")]
        cfg = demo_config(
            lambda t: t + f'\n[notify]\nwebhook_url = "{server.url}/hook"\nbackoff_seconds = 1\n'
        )
        done = subprocess.run(
            [AGGREGATOR, "rebalance", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=180,
            env=clean_env({"AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/n.sqlite"}),
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    sent = [e for e in _json_lines(done.stderr) if e["event"] == "notify_sent"]
    assert len(sent) == 1 and sent[0]["attempts"] == 2
    assert server.hits["/hook"] == 2


def test_a_cli_rebalance_with_a_hanging_webhook_exits_within_the_deadline(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A receiver that never answers: the CLI still exits 0, after `notify_failed` naming the deadline."""
    with RawReceiver(["hang"]) as receiver:
        cfg = demo_config(lambda t: t + f'\n[notify]\nwebhook_url = "{receiver.url}"\ndeadline_seconds = 2\n')
        done = subprocess.run(
            [AGGREGATOR, "rebalance", "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=180,
            env=clean_env({"AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/n.sqlite"}),
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    failed = [e for e in _json_lines(done.stderr) if e["event"] == "notify_failed"]
    assert len(failed) == 1 and failed[0]["seconds"] < 2 + 10  # 4 attempts of 5 s and back-off: 34 s
    assert failed[0]["reason"].startswith("deadline_seconds=2 passed")


@contextlib.contextmanager
def _daemon(cfg: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with start_daemon(cfg, env) as proc:
        watchdog = threading.Timer(120, proc.kill)
        watchdog.start()
        try:
            yield proc
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()


def test_the_daemon_flushes_its_webhook_queue_on_sigterm(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """SIGTERM right after a proposal whose first delivery failed (500, then a 3 s back-off): the daemon retries
    before it exits and logs `notify_sent` before `daemon_stopped`."""
    with FixtureServer() as server:
        server.routes["/hook"] = [Reply(b"{}", status=500), Reply(b"{}")]
        cfg = demo_config(
            lambda t: t + f'\n[notify]\nwebhook_url = "{server.url}/hook"\nbackoff_seconds = 3\n'
        )
        env = {
            "AGGREGATOR_API__ENABLED": "false",
            "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp_path}/d.sqlite",
        }
        with _daemon(cfg, env) as proc:
            assert proc.stdout is not None
            lines: list[dict[str, Any]] = []
            for line in proc.stdout:
                lines.append(json.loads(line))
                if lines[-1]["event"] == "cycle_finished":
                    proc.send_signal(signal.SIGTERM)
                    break
            lines += _json_lines(proc.stdout.read())
            assert proc.wait(timeout=60) == 0
    events = [e["event"] for e in lines]
    assert "notify_sent" in events, events
    assert events.index("notify_sent") < events.index("daemon_stopped")
    assert server.hits["/hook"] == 2
