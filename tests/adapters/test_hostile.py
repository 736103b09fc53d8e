"""Hostile sources, every HTTP adapter of the registry at once: each misbehaviour ends as that source's failure
(`source_failed` naming why), within the deadline plus a margin and a bounded growth of the process's peak RSS,
while a good source beside them keeps its quote.

Small caps keep it fast: a 64 KiB body cap, a 1 s deadline with a 0.5 s read timeout (the server drips a byte
every 0.1 s, so only the deadline can end a slow answer).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from adapters import REGISTRY
from adapters.base import MAX_TEXT
from adapters.errors import MAX_REASON
from aggregator.rates.collect import RateBook, collect
from aggregator.settings import Settings
from aggregator.store import Store
from tests.adapters.cases import HTTP_CASES, Case
from tests.adapters.test_contract import http_settings
from tests.fixture_server import FixtureServer, Reply
from tests.hostile_server import HostileServer

NOW = datetime(2026, 9, 14, 13, tzinfo=UTC)
CAP = 64 * 1024
DEADLINE = 1.0
MARGIN = 3.0  # a loaded 2-core machine
RSS_CAP_MB = 40.0
BIG = 2_000_000  # characters in an oversized string
LIMITS = {
    "timeout_seconds": 0.5,
    "deadline_seconds": DEADLINE,
    "max_attempts": 2,
    "backoff_base_seconds": 0.01,
    "backoff_max_seconds": 0.02,
    "max_response_bytes": CAP,
    "max_age_hours": 87_600.0,  # the largest the settings accept (10 years): recorded fixtures are old
}
GOOD = 0.0311


def http_adapters() -> list[str]:
    """Every adapter of the registry that makes HTTP requests: all but the file and config ones."""
    return sorted(set(REGISTRY) - {"snapshot", "static"})


def _url_count(adapter: str) -> int:
    """How many URLs the adapter tries in turn (its ordered fallbacks), 1 for single-URL sources."""
    return len(getattr(REGISTRY[adapter], "urls", ("",)))


def _case(adapter: str) -> Case | None:
    return next((c for c in HTTP_CASES if c.adapter == adapter), None)


def _source(adapter: str, base: str, **extra: Any) -> tuple[dict[str, Any], str]:
    """One adapter's source settings pointing at `base`, and the key asked for."""
    if adapter == "onchain":
        return {"adapter": "onchain", "rpc_url": f"{base}/", **LIMITS, **extra}, "reth"
    case = _case(adapter)
    assert case is not None, f"no recorded case for adapter {adapter}"
    return http_settings(case, base, **{**LIMITS, **extra}), case.key


def build(urls: dict[str, str], database: Path | None = None, **extra: Any) -> Settings:
    """Idle ETH, one venue per HTTP adapter (source named after it, at `urls[adapter]`), and a good static one."""
    sources: dict[str, Any] = {
        "good": {"adapter": "static", "values": {"x": {"value": GOOD, "note": "the source that works"}}}
    }
    venues: list[dict[str, Any]] = [
        {"id": "eth", "kind": "idle"},
        {
            "id": "good",
            "parent": "eth",
            "kind": "liquid_staking",
            "components": [{"name": "base", "quotes": [{"source": "good", "key": "x"}]}],
        },
    ]
    for adapter in http_adapters():
        sources[adapter], key = _source(adapter, urls[adapter], **extra)
        venues.append(
            {
                "id": f"v-{adapter}",
                "parent": "eth",
                "kind": "liquid_staking",
                "components": [{"name": "base", "quotes": [{"source": adapter, "key": key}]}],
            }
        )
    raw: dict[str, Any] = {"portfolio": {"holdings_eth": {"eth": 1.0}}, "venues": venues, "sources": sources}
    if database is not None:
        raw["database"] = {"url": f"sqlite:///{database}"}
    return Settings.model_validate(raw)


def _status(field: str) -> float:
    """A /proc/self/status memory figure in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"{field} not in /proc/self/status")


def _peak_growth_start() -> float:
    """Reset this process's peak RSS (clear_refs 5) and return the RSS now, in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def run(settings: Settings) -> tuple[RateBook, list[dict[str, Any]], float]:
    async def go() -> RateBook:
        async with httpx.AsyncClient() as client:
            # The outer bound only keeps a broken build from hanging the suite; the assertions are tighter.
            return await asyncio.wait_for(collect(settings, client, lambda: NOW), 60)

    start = time.monotonic()
    with capture_logs() as logs:
        book = asyncio.run(go())
    return book, logs, time.monotonic() - start


EXPECTED = {
    "nested": "nested deeper than max_json_depth",
    "huge": "larger than max_response_bytes",
    "declared_huge": "larger than max_response_bytes",
    "endless": "larger than max_response_bytes",
    "gzip_bomb": "larger than max_response_bytes",
    "slow_body": f"deadline of {DEADLINE:g}s exceeded",
    "slow_status": f"deadline of {DEADLINE:g}s exceeded",
}


@pytest.mark.parametrize("behaviour", sorted(EXPECTED))
def test_every_http_adapter_survives_a_hostile_server(behaviour: str) -> None:
    """Each adapter fails alone with the reason named, in one request per URL (nothing over a cap is retried), inside
    the deadline and without buffering what the server sends (up to 32 MiB per connection, the bomb 32 MiB
    decompressed, to every adapter at once); the good source keeps its rate."""
    before = _peak_growth_start()
    with HostileServer(behaviour) as server:
        settings = build(dict.fromkeys(http_adapters(), server.url))
        book, logs, elapsed = run(settings)
        requests = server.requests
    growth = _status("VmHWM") - before
    failed = {e["source"]: e for e in logs if e["event"] == "source_failed"}
    assert set(failed) == set(http_adapters()), logs
    for adapter, event in failed.items():
        assert EXPECTED[behaviour] in event["reason"], (adapter, event)
        assert event["error"] in ("SourceDataError", "TemporarySourceError"), event
    assert [(r.venue, r.value) for r in book.rates] == [("good", GOOD)]
    # one per URL: a cap ends a request and nothing over a cap is retried, but a source with fallback URLs asks
    # its next one; the deadline is one per source, so a slow server gets one request per source
    slow = behaviour.startswith("slow")
    assert requests == sum(1 if slow else _url_count(a) for a in http_adapters())
    assert elapsed < DEADLINE + MARGIN, f"{behaviour}: {elapsed:.2f}s"
    assert growth < RSS_CAP_MB, f"{behaviour}: peak RSS grew {growth:.1f} MiB"


def _oversized(case: Case) -> bytes:
    """The case's recorded payload with its number replaced by a 2-million-character string (for DefiLlama, the
    pool's `project` name instead, so the quote is used and its note must be cut)."""
    doc = case.payload()
    if case.adapter == "defillama":
        doc["data"][0]["project"] = "p" * BIG
        return json.dumps(doc).encode()
    if not case.value_path:
        return json.dumps("9" * BIG).encode()
    node = doc
    for p in case.value_path[:-1]:
        node = node[p]
    node[case.value_path[-1]] = "9" * BIG
    return json.dumps(doc).encode()


def test_oversized_strings_never_reach_the_store(tmp_path: Path) -> None:
    """2-million-character strings from every adapter: each fails, is rejected, or is used with its text cut;
    nothing logged or stored carries more than the bounds, and the database grows by kilobytes, not megabytes."""
    db = tmp_path / "agg.sqlite"
    with FixtureServer() as server:
        urls = {a: f"{server.url}/{a}" for a in http_adapters()}
        for adapter in http_adapters():
            case = _case(adapter)
            if case is not None:
                server.routes[f"/{adapter}{case.path}"] = [Reply(_oversized(case))]
        big = json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x" + "f" * BIG}).encode()
        server.rpc["/onchain/"] = lambda _request: Reply(big)
        settings = build(urls, database=db, max_response_bytes=8 * 1024 * 1024)
        book, logs, _ = run(settings)
    # every oversized number is refused; DefiLlama's number is fine and its long pool name is cut
    assert sorted(r.venue for r in book.rates) == ["good", "v-defillama"]
    texts = [
        *book.failed_sources.values(),
        *(j.reason for j in book.rejected),
        *(q.note for q in book.quotes),
    ]
    assert max(map(len, texts)) <= MAX_REASON
    assert all(len(q.note) <= MAX_TEXT for q in book.quotes)
    assert any(e["event"] == "source_failed" and e["source"] == "onchain" for e in logs)
    store = Store(settings.database.url)
    size = db.stat().st_size
    store.record_rates(book, "test")
    assert db.stat().st_size - size < 256 * 1024
