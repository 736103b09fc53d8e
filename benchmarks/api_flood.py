"""Idle-connection flood: the daemon with a file-descriptor limit, more idle connections opened against its API than
it has descriptors, then /health latency, the rebalance cycles and the daemon's descriptors while they are held.

    .venv/bin/python -m benchmarks.api_flood [--connections 1100] [--fd-limit 1024] [--seconds 15]

The daemon runs on the bundled demo config (its own scratch database, a random port on 127.0.0.1, a rebalance
every 1.2 s) with RLIMIT_NOFILE set to `--fd-limit` (soft and hard, as a service manager would). This process opens
`--connections` TCP connections that never send a byte and holds them for `--seconds`, asking /health three times
and counting what the daemon logs meanwhile. Exit code 1 if /health did not answer within 5 s or a cycle failed.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.daemon import Daemon
from tests.helpers.demo import AGGREGATOR, clean_env, copy_demo, free_port

LIMITED = (  # exec argv[2:] with RLIMIT_NOFILE at argv[1] (soft and hard)
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)
BAD = ("rebalance_failed", "rates_failed", "source_failed", "rebalance_skipped")


class LimitedDaemon(Daemon):
    """tests.helpers.daemon.Daemon started under a descriptor limit, its stderr counted (not kept)."""

    def __init__(self, config: Path, env: dict[str, str], fd_limit: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LIMITED, str(fd_limit), AGGREGATOR, "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(env),
        )
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr_bytes = 0
        self.stderr_head: list[str] = []
        threading.Thread(target=self._count_stderr, daemon=True).start()

    def _count_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_bytes += len(line.encode())
            if len(self.stderr_head) < 5:
                self.stderr_head.append(line.rstrip()[:200])


def _health(url: str) -> str:
    start = time.monotonic()
    try:
        status = httpx.get(url, timeout=10).json()["status"]
    except (httpx.HTTPError, ValueError) as exc:
        return f"failed after {time.monotonic() - start:.2f} s ({type(exc).__name__})"
    return f"{status} in {(time.monotonic() - start) * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--fd-limit", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="flood-"))
    port = free_port()
    env = {
        "AGGREGATOR_API__PORT": str(port),
        "AGGREGATOR_API__TOKEN": "flood-benchmark-token-value",
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{home / 'flood.sqlite'}",
        "AGGREGATOR_SCHEDULE__REBALANCE_EVERY_MINUTES": "0.02",
    }
    daemon = LimitedDaemon(copy_demo(home), env, args.fd_limit)
    held: list[socket.socket] = []
    url = f"http://127.0.0.1:{port}/health"
    try:
        daemon.wait_for("cycle_finished")
        before = len(daemon.events)
        fds_before = daemon.open_fds()
        baseline = [_health(url) for _ in range(3)]
        start = time.monotonic()
        for _ in range(args.connections):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        opened = time.monotonic() - start
        healths = [_health(url)]
        peak_fds = daemon.open_fds()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            time.sleep(min(1.0, max(end - time.monotonic(), 0)))
            peak_fds = max(peak_fds, daemon.open_fds())
            if len(healths) < 3 and time.monotonic() > end - args.seconds * (2 - len(healths)) / 3:
                healths.append(_health(url))
        events = Counter(e["event"] for e in daemon.events[before:])
        loop_errors = sorted(
            {f"{e['message']}: {e['error']}" for e in daemon.events if e["event"] == "api_loop_error"}
        )
    finally:
        for sock in held:
            sock.close()
        code = daemon.stop()
    print(
        f"API flood: {args.connections} idle connections (opened in {opened:.1f} s) held {args.seconds:g} s "
        f"against the daemon with RLIMIT_NOFILE {args.fd_limit}"
    )
    print(f"/health before: {'; '.join(baseline)}")
    print(f"/health while held: {'; '.join(healths)}")
    print(f"daemon open fds: {fds_before} before, peak {peak_fds} while held")
    print(
        f"rebalances while held: completed {events['rebalance_completed']}, "
        + ", ".join(f"{name} {events[name]}" for name in BAD)
    )
    api = {k: v for k, v in events.items() if k.startswith("api_")}
    print(
        f"API log lines while held: {json.dumps(api, sort_keys=True)}; daemon stderr {daemon.stderr_bytes} bytes"
    )
    for line in daemon.stderr_head:
        print(f"  stderr: {line}")
    for error in loop_errors:
        print(f"  api_loop_error: {error}")
    print(f"daemon exit code after SIGTERM: {code}")
    ok = all(h.startswith("ok") and int(h.split()[2]) < 5000 for h in healths) and not any(
        events[name] for name in BAD
    )
    print(f"result: {'ok' if ok else 'FAILED'}")
    return 0 if ok and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
