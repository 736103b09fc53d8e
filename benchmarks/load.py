"""Load benchmark: the daemon's HTTP API under bounded concurrent load from a second process, then 20 concurrent
rebalance triggers against the lock.

    .venv/bin/python -m benchmarks.load [--seconds 20] [--concurrency 32] [--triggers 20]
                                        [--sweep 1,4,16,32,64] [--sweep-seconds 5]

The daemon runs as a subprocess on the bundled demo config (its own scratch database, a random port on
127.0.0.1). This process is the client:

1. For `--seconds`, `--concurrency` workers send a fixed mix of requests back to back: the read endpoints and
   writes that must be refused (no token, a wrong token). Per endpoint: count, p50, p99, max, and errors (a status
   other than the expected one, or no answer), and the CPU time the daemon and this client used meanwhile. Then the
   same mix for `--sweep-seconds` at each client count of `--sweep`: throughput and latency as concurrency grows.
   The client is aiohttp: at 0.2-0.3 ms of CPU per request it leaves the cores to the daemon (httpx's async client
   took 1-2.6 ms per request here and, at 32 clients, was itself the bottleneck).
2. `--triggers` authenticated POST /api/v1/rebalance at once, first without waiting (one runs, the rest must get
   409), then each willing to wait 60 s (all must run, one after another). The daemon's log must show the cycles
   never overlapping (cycle_started / cycle_finished strictly alternate) and the store one proposal per 200.

Exit code 1 if any error or overlap was seen.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx

from tests.helpers.daemon import Daemon
from tests.helpers.demo import copy_demo, free_port

TOKEN = "load-benchmark-token-value"


@dataclass
class Endpoint:
    name: str
    method: str
    path: str
    expect: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, object] | None = None


def _mix(proposal: str) -> list[Endpoint]:
    return [
        Endpoint("GET /health", "GET", "/health", 200),
        Endpoint("GET /metrics", "GET", "/metrics", 200),
        Endpoint("GET /api/v1/rates", "GET", "/api/v1/rates", 200),
        Endpoint("GET /api/v1/proposals", "GET", "/api/v1/proposals?limit=20", 200),
        Endpoint("GET /api/v1/proposals/{id}", "GET", f"/api/v1/proposals/{proposal}", 200),
        Endpoint("POST /api/v1/rebalance (no token)", "POST", "/api/v1/rebalance", 401, body={}),
        Endpoint(
            "POST /api/v1/rebalance (wrong token)",
            "POST",
            "/api/v1/rebalance",
            401,
            headers={"Authorization": "Bearer not-the-token"},
            body={"apply": True},
        ),
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Run:
    """One load level: latencies and errors per endpoint, and the CPU each side used meanwhile."""

    concurrency: int
    seconds: float
    latencies: dict[str, list[float]]
    errors: dict[str, int]
    daemon_cpu: float
    client_cpu: float

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def all_ms(self) -> list[float]:
        return [v * 1000 for values in self.latencies.values() for v in values]


async def _load(
    base: str, mix: list[Endpoint], seconds: float, concurrency: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:

        async def worker(offset: int) -> None:
            i = offset
            while time.monotonic() < deadline:
                ep = mix[i % len(mix)]
                i += 1
                start = time.perf_counter()
                try:
                    async with session.request(ep.method, ep.path, headers=ep.headers, json=ep.body) as r:
                        await r.read()
                        ok = r.status == ep.expect
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                latencies[ep.name].append(time.perf_counter() - start)
                if not ok:
                    errors[ep.name] += 1

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return latencies, errors


def _measure(daemon: Daemon, base: str, mix: list[Endpoint], seconds: float, concurrency: int) -> Run:
    daemon_before, client_before = daemon.cpu_seconds(), time.process_time()
    latencies, errors = asyncio.run(_load(base, mix, seconds, concurrency))
    return Run(
        concurrency,
        seconds,
        latencies,
        errors,
        daemon_cpu=daemon.cpu_seconds() - daemon_before,
        client_cpu=time.process_time() - client_before,
    )


async def _triggers(base: str, n: int, wait_seconds: float) -> list[int]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        base_url=base, timeout=120, limits=httpx.Limits(max_connections=n)
    ) as client:
        replies = await asyncio.gather(
            *(
                client.post("/api/v1/rebalance", json={"wait_seconds": wait_seconds}, headers=auth)
                for _ in range(n)
            )
        )
    return [r.status_code for r in replies]


def _overlaps(daemon: Daemon) -> int:
    """Cycles that started while another was running, from the daemon's own log."""
    running, overlaps = 0, 0
    for e in daemon.events:
        if e["event"] == "cycle_started":
            running += 1
            overlaps += running > 1
        elif e["event"] == "cycle_finished":
            running -= 1
    return overlaps


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--triggers", type=int, default=20)
    parser.add_argument(
        "--sweep",
        default="1,4,16,32,64",
        help="client counts to measure after the main run, comma-separated ('' for none)",
    )
    parser.add_argument("--sweep-seconds", type=float, default=5.0)
    args = parser.parse_args()
    levels = [int(level) for level in args.sweep.split(",") if level.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = copy_demo(Path(tmp))
        env = {
            "AGGREGATOR_API__PORT": str(port),
            "AGGREGATOR_API__TOKEN": TOKEN,
            "AGGREGATOR_DATABASE__URL": f"sqlite:///{tmp}/load.sqlite",
        }
        daemon = Daemon(config, env)
        try:
            daemon.wait_for("api_started")
            daemon.wait_for("cycle_finished")
            base = f"http://127.0.0.1:{port}"
            proposal = httpx.get(f"{base}/api/v1/proposals?limit=1", timeout=10).json()[0]["id"]
            mix = _mix(proposal)
            rss_before = daemon.rss_mib()
            main_run = _measure(daemon, base, mix, args.seconds, args.concurrency)
            rss_after = daemon.rss_mib()
            errors = dict(main_run.errors)
            print(
                f"API load: {args.concurrency} concurrent clients for {args.seconds:g} s from a second process "
                f"({main_run.requests} requests, {main_run.requests / args.seconds:.0f}/s); "
                f"daemon RSS {rss_before:.0f} → {rss_after:.0f} MiB"
            )
            print(
                f"CPU meanwhile: daemon {main_run.daemon_cpu:.1f} s, this client {main_run.client_cpu:.1f} s "
                f"(of {args.seconds:g} s on {os.cpu_count()} cores)"
            )
            print(f"{'endpoint':40} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
            for name, values in main_run.latencies.items():
                ms = [v * 1000 for v in values]
                print(
                    f"{name:40} {len(ms):>9} {statistics.median(ms):>8.1f} {_pct(ms, 0.99):>8.1f} "
                    f"{max(ms):>8.1f} {errors.get(name, 0):>7}"
                )

            if levels:
                print(f"\nby concurrency ({args.sweep_seconds:g} s each, the same mix):")
                print(
                    f"{'clients':>7} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
                    f"{'daemon CPU s':>13} {'client CPU s':>13}"
                )
                for level in levels:
                    run = _measure(daemon, base, mix, args.sweep_seconds, level)
                    ms = run.all_ms()
                    for name, n in run.errors.items():
                        errors[name] = errors.get(name, 0) + n
                    print(
                        f"{level:>7} {run.requests / run.seconds:>7.0f} {statistics.median(ms):>8.1f} "
                        f"{_pct(ms, 0.99):>8.1f} {sum(run.errors.values()):>7} {run.daemon_cpu:>13.1f} "
                        f"{run.client_cpu:>13.1f}"
                    )

            before = daemon.count("rebalance_completed")
            t0 = time.perf_counter()
            at_once = asyncio.run(_triggers(base, args.triggers, 0.0))
            t1 = time.perf_counter()
            waiting = asyncio.run(_triggers(base, args.triggers, 60.0))
            t2 = time.perf_counter()
            daemon.wait_for(
                "rebalance_completed", before + at_once.count(200) + waiting.count(200), timeout=30
            )
            stored = len(httpx.get(f"{base}/api/v1/proposals?limit=500", timeout=10).json())
            overlaps = _overlaps(daemon)
            expected = daemon.count("rebalance_completed")  # the start-up cycle and every trigger that ran
            print(f"\n{args.triggers} concurrent authenticated triggers:")
            print(
                f"  without waiting: {at_once.count(200)} ran, {at_once.count(409)} refused with 409, "
                f"{len(at_once) - at_once.count(200) - at_once.count(409)} other; {t1 - t0:.2f} s"
            )
            print(
                f"  waiting up to 60 s: {waiting.count(200)} ran one after another, "
                f"{len(waiting) - waiting.count(200)} not; {t2 - t1:.2f} s"
            )
            print(
                f"  overlapping cycles in the daemon's log: {overlaps}; proposals stored: {stored} "
                f"(cycles completed: {expected})"
            )
        finally:
            code = daemon.stop()
        print(f"daemon exit code after SIGTERM: {code}")

    bad = (
        sum(errors.values())
        + overlaps
        + (at_once.count(200) < 1)
        + (len(at_once) - at_once.count(200) - at_once.count(409))
        + (len(waiting) - waiting.count(200))
        + (code != 0)
        + (stored != expected)
    )
    print("result:", "ok" if not bad else f"{bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
