"""Hostile sources at the default caps: every HTTP adapter meets each misbehaviour of `tests.hostile_server` at
once; prints the collection's wall time, the process's peak RSS growth and the requests the server saw.

    .venv/bin/python -m benchmarks.hostile [--deadline 5]

The default `max_response_bytes` (4 MiB; 32 MiB for DefiLlama) and depth limit apply; the deadline is lowered
(60 s by default; the read timeout to 2 s) so the slow cases end in seconds. The server sends up to 256 MiB per connection (decompressed,
for the gzip bomb).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

import httpx
import structlog

from aggregator.rates.collect import collect
from tests.helpers import hostile as test_hostile
from tests.helpers.hostile_server import BEHAVIOURS, HostileServer


def _mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=5.0)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    test_hostile.LIMITS.clear()
    test_hostile.LIMITS.update(
        {
            "timeout_seconds": 2.0,
            "deadline_seconds": args.deadline,
            "max_attempts": 3,
            "max_age_hours": 87_600.0,
        }
    )
    adapters = test_hostile.http_adapters()
    print(f"{len(adapters)} HTTP adapters at once, deadline {args.deadline:g} s, default size caps")
    print(f"{'behaviour':<14} {'wall s':>7} {'peak RSS +MiB':>14} {'requests':>9} {'failed':>7}")
    warm_up = True
    for behaviour in ("declared_huge", *BEHAVIOURS):  # the first run warms the imports up, unmeasured
        Path("/proc/self/clear_refs").write_text("5")
        before = _mib("VmRSS")
        with HostileServer(behaviour, limit=256 * 1024 * 1024) as server:
            settings = test_hostile.build(dict.fromkeys(adapters, server.url))

            async def go(s: object = settings) -> int:
                async with httpx.AsyncClient() as client:
                    book = await collect(s, client, lambda: test_hostile.NOW)  # type: ignore[arg-type]
                    return len(book.failed_sources)

            start = time.monotonic()
            failed = asyncio.run(go())
            elapsed = time.monotonic() - start
            requests = server.requests
        growth = _mib("VmHWM") - before
        if warm_up:
            warm_up = False
            continue
        print(f"{behaviour:<14} {elapsed:>7.2f} {growth:>14.1f} {requests:>9} {failed:>7}")


if __name__ == "__main__":
    main()
