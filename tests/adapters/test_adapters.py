"""Adapters: units pinned against recorded payloads, failures translated at the boundary."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from adapters import REGISTRY, SourceDataError, TemporarySourceError
from adapters.defillama import DefiLlamaSettings, chart
from adapters.endpoints import rejected_reasons
from adapters.snapshot import SnapshotSettings
from adapters.static import StaticSettings, StaticValue

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = FIXTURES.parent.parent
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LIDO = "747c1d2a-c668-4682-b9f9-296708a3dd90"


def _fetch(adapter: str, settings: object, keys: list[str], handler: object = None) -> list:
    async def go() -> list:
        transport = httpx.MockTransport(handler) if handler else None  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport) as client:
            return await REGISTRY[adapter].fetch(client, adapter, settings, keys, lambda: NOW)

    return asyncio.run(go())


def _serve(status: int = 200, body: bytes | None = None, ctype: str = "application/json") -> object:
    payload = (
        body
        if body is not None
        else (FIXTURES / "defillama" / "pools.partly-reconstructed.json").read_bytes()
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/pools"
        return httpx.Response(status, content=payload, headers={"content-type": ctype})

    return handler


def test_defillama_percent_becomes_a_fraction() -> None:
    """Lido's apyBase 2.235 (percent, real 2026-09-14 row) is 0.02235 per year."""
    settings = DefiLlamaSettings(adapter="defillama", base_url="http://llama.test")
    quotes = _fetch("defillama", settings, [LIDO], _serve())
    assert len(quotes) == 1 and quotes[0].value == pytest.approx(0.02235)
    assert quotes[0].observed_at == NOW and "lido" in quotes[0].note


def test_defillama_reads_the_configured_field() -> None:
    """field = apyMean30d reads Lido's 30-day mean 2.23403 %."""
    settings = DefiLlamaSettings(adapter="defillama", base_url="http://llama.test", field="apyMean30d")
    assert _fetch("defillama", settings, [LIDO], _serve())[0].value == pytest.approx(0.0223403)


@pytest.mark.parametrize(
    ("status", "body", "ctype", "error"),
    [
        (500, b"oops", "text/plain", TemporarySourceError),
        (429, b"slow down", "text/plain", TemporarySourceError),
        (404, b"{}", "application/json", SourceDataError),
        (200, b"<html>maintenance</html>", "text/html", SourceDataError),
        (200, b'{"status":"success","data":[{"pool"', "application/json", SourceDataError),
        (200, b'{"status":"error"}', "application/json", SourceDataError),
    ],
)
def test_defillama_failures_are_translated(status: int, body: bytes, ctype: str, error: type) -> None:
    """HTTP and payload failures become TemporarySourceError (retry) or SourceDataError (skip), never httpx errors."""
    settings = DefiLlamaSettings(adapter="defillama", base_url="http://llama.test")
    with pytest.raises(error):
        _fetch("defillama", settings, [LIDO], _serve(status, body, ctype))


def test_defillama_value_as_string_is_read_only_when_numeric() -> None:
    """A number turned into a string (as Lido's APR once did upstream) is read as the same number, as every HTTP
    adapter reads it (issue 20, `adapters.endpoints.number`); a string that is not a number is not coerced: the
    pool's quote is rejected naming the field, and the source does not fail."""
    payload = json.loads((FIXTURES / "defillama" / "pools.partly-reconstructed.json").read_text())
    settings = DefiLlamaSettings(adapter="defillama", base_url="http://llama.test")
    payload["data"][0]["apyBase"] = "2.235"
    quotes = _fetch("defillama", settings, [LIDO], _serve(body=json.dumps(payload).encode()))
    assert [q.value for q in quotes] == [pytest.approx(0.02235)]
    payload["data"][0]["apyBase"] = "2.2 %"
    quotes = _fetch("defillama", settings, [LIDO], _serve(body=json.dumps(payload).encode()))
    assert quotes == []
    assert rejected_reasons(quotes) == {
        LIDO: f"pool {LIDO}: field apyBase is not a number or a numeric string: '2.2 %'"
    }


def test_defillama_connection_refused_is_temporary() -> None:
    """A port nobody listens on is a temporary failure."""
    settings = DefiLlamaSettings(adapter="defillama", base_url="http://127.0.0.1:9", timeout_seconds=2)
    with pytest.raises(TemporarySourceError, match="connection failed"):
        _fetch("defillama", settings, [LIDO])


def test_snapshot_replay_keeps_relative_ages() -> None:
    """Replayed quotes are re-stamped so the snapshot's as_of is now; older quotes stay older by the same amount."""
    settings = SnapshotSettings(adapter="snapshot", path=ROOT / "data/snapshots/demo-2026-09-14.json")
    quotes = {q.key: q for q in _fetch("snapshot", settings, ["lido-steth.base", "kelp-rseth.base"])}
    assert quotes["lido-steth.base"].observed_at == NOW
    assert quotes["lido-steth.base"].value == pytest.approx(0.02235)
    as_of = datetime(2026, 9, 14, 23, tzinfo=UTC)
    assert NOW - quotes["kelp-rseth.base"].observed_at == as_of - datetime(2024, 8, 13, tzinfo=UTC)
    assert "recorded 2024-08-13" in quotes["kelp-rseth.base"].note


def test_snapshot_missing_file_is_a_data_error(tmp_path: Path) -> None:
    """A missing snapshot file is reported by path."""
    settings = SnapshotSettings(adapter="snapshot", path=tmp_path / "nope.json")
    with pytest.raises(SourceDataError, match="not found"):
        _fetch("snapshot", settings, ["x"])


def test_static_returns_configured_values_with_their_note() -> None:
    """Static values come back as quotes with the note saying where they come from."""
    settings = StaticSettings(adapter="static", values={"a": StaticValue(value=0.01, note="from a report")})
    quotes = _fetch("static", settings, ["a", "b"])
    assert [(q.key, q.value, q.note) for q in quotes] == [("a", 0.01, "from a report")]
    assert NOW - quotes[0].observed_at == timedelta(0)


def test_defillama_resolves_project_chain_symbol_to_the_canonical_pool() -> None:
    """`lido/Ethereum/STETH` resolves to Lido's configID from the same /pools answer; unknown names give nothing."""
    settings = DefiLlamaSettings(adapter="defillama", base_url="http://llama.test")
    quotes = _fetch("defillama", settings, ["lido/Ethereum/STETH", "nobody/Ethereum/XETH"], _serve())
    assert [(q.key, q.value) for q in quotes] == [("lido/Ethereum/STETH", pytest.approx(0.02235))]


def test_defillama_chart_history_in_fractions_oldest_first() -> None:
    """/chart/{pool} gives the daily history as fractions per year, in time order."""

    body = (FIXTURES / "defillama" / "chart_steth.reconstructed.json").read_bytes()

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/chart/{LIDO}"
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    async def go() -> list:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await chart(
                client, "llama", DefiLlamaSettings(adapter="defillama", base_url="http://x"), LIDO
            )

    points = asyncio.run(go())
    assert len(points) == 452 and points[0].timestamp < points[-1].timestamp
    assert points[0].apy == pytest.approx(0.032) and points[-1].apy == pytest.approx(0.0279)


def test_defillama_chart_needs_a_pool_id() -> None:
    """A non-UUID pool is refused before any request, as the API would with 'invalid configID!'."""

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            await chart(client, "llama", DefiLlamaSettings(adapter="defillama"), "lido")

    with pytest.raises(SourceDataError, match="configID"):
        asyncio.run(go())
