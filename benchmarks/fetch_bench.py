"""Fetch benchmark: one cycle's collection from 12 sources, each answering after 300 ms, from a real HTTP server
on 127.0.0.1; then the same with one more source that never answers.

    .venv/bin/python -m benchmarks.fetch_bench

Sources are fetched concurrently, so a cycle should cost about one latency, and a dead source its own timeout.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from aggregator.rates.collect import RateBook, collect
from aggregator.settings import Settings
from tests.helpers.cases import HTTP_CASES, ROOT
from tests.helpers.fixture_server import FixtureServer, Reply

LATENCY = 0.3
DEAD_TIMEOUT = 2.0


def _config(url: str, dead: bool) -> Settings:
    sources: dict[str, Any] = {}
    venues: list[dict[str, Any]] = [{"id": "eth", "kind": "idle"}]

    def add(name: str, adapter: str, key: str, **extra: Any) -> None:
        base = f"{url}/{name}"  # each source under its own prefix: Renzo and Rocket Pool share /api/apr
        sources[name] = {
            "adapter": adapter,
            "base_url": base,
            "max_age_hours": 87_600.0,
            "max_attempts": 1,
            **extra,
        }
        if adapter == "swell":
            sources[name]["restaking_base_url"] = base
        venues.append(
            {
                "id": f"v-{name}",
                "parent": "eth",
                "kind": "liquid_staking",
                "components": [{"name": "base", "quotes": [{"source": name, "key": key}]}],
            }
        )

    for case in HTTP_CASES:  # 10 sources
        add(case.adapter, case.adapter, case.key)
    add("lido-sma", "lido", "apr_sma")
    add("llama-mean", "defillama", "747c1d2a-c668-4682-b9f9-296708a3dd90", field="apyMean30d")
    if dead:
        add("dead", "renzo", "apr", timeout_seconds=DEAD_TIMEOUT)
    return Settings.model_validate(
        {"portfolio": {"holdings_eth": {"eth": 1.0}}, "venues": venues, "sources": sources}
    )


def _cycle(settings: Settings) -> tuple[float, RateBook]:
    async def go() -> RateBook:
        async with httpx.AsyncClient() as client:
            return await collect(settings, client, lambda: datetime.now(UTC))

    start = time.perf_counter()
    book = asyncio.run(go())
    return time.perf_counter() - start, book


def main() -> None:
    import structlog  # noqa: PLC0415 - quiet the per-quote log lines of the benchmark

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with FixtureServer() as server:
        for case in HTTP_CASES:
            body = (ROOT / "tests/fixtures" / case.fixture).read_bytes()
            server.routes[f"/{case.adapter}{case.path}"] = [Reply(body, delay=LATENCY)]
        sma = (ROOT / "tests/fixtures/lido/apr_sma.json").read_bytes()
        server.routes["/lido-sma/v1/protocol/steth/apr/sma"] = [Reply(sma, delay=LATENCY)]
        pools = (ROOT / "tests/fixtures/defillama/pools.partly-reconstructed.json").read_bytes()
        server.routes["/llama-mean/pools"] = [Reply(pools, delay=LATENCY)]
        server.routes["/dead/api/apr"] = [Reply(b"{}", delay=DEAD_TIMEOUT * 5)]
        print(f"12 sources, {LATENCY * 1000:.0f} ms latency each, one request per source (HTTP on 127.0.0.1)")
        print("| cycle | wall seconds (median of 5) | sources answered | sources failed |")
        print("|---|---|---|---|")
        for dead in (False, True):
            settings = _config(server.url, dead)
            runs = [_cycle(settings) for _ in range(5)]
            wall = statistics.median(r[0] for r in runs)
            book = runs[-1][1]
            answered = len({s for r in book.rates for s in r.sources})
            label = "12 sources" if not dead else f"12 sources + 1 dead (timeout {DEAD_TIMEOUT:g} s)"
            print(f"| {label} | {wall:.3f} | {answered} | {len(book.failed_sources)} |")
            for name, reason in sorted(book.failed_sources.items()):
                print(f"    failed: {name}: {reason}")


if __name__ == "__main__":
    main()
