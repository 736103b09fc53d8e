"""The onchain adapter against a JSON-RPC server answering from real recorded rETH rates."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from adapters import REGISTRY, Quote, SourceDataError, SourceError
from adapters.onchain import OnchainSettings, annualise
from aggregator.rates.collect import collect
from tests.adapters.cases import FIXTURES, one_source_settings
from tests.fixture_server import FixtureServer, Reply

NOW = datetime(2024, 9, 6, tzinfo=UTC)
CHAIN = json.loads((FIXTURES / "onchain" / "reth.reconstructed.json").read_text())
R1, R0 = 1.115282793519138504, 1.114806047305823000


def answer(request: dict[str, Any], broken: str = "") -> Reply:
    method, params = request["method"], request["params"]
    if broken == "rpc error":
        result: dict[str, Any] = {"error": {"code": -32000, "message": "missing trie node"}}
    elif method == "eth_blockNumber":
        result = {"result": CHAIN["latest_block"]}
    elif method == "eth_getBlockByNumber":
        stamp = "0x1" + "0" * 20 if broken == "timestamp not a date" else CHAIN["blocks"][params[0]]
        result = {"result": {"number": params[0], "timestamp": stamp}}
    elif method == "eth_call":
        key = f"{params[0]['to'].lower()}:{params[0]['data']}"
        value = "0x" if broken == "empty result" else CHAIN["calls"].get(key, {}).get(params[1], "0x")
        result = {"result": value}
    else:
        result = {"error": {"code": -32601, "message": "method not found"}}
    return Reply(json.dumps({"jsonrpc": "2.0", "id": request["id"], **result}).encode())


def fetch(keys: list[str], broken: str = "") -> list[Quote]:
    with FixtureServer() as server:
        server.rpc["/"] = lambda req: answer(req, broken)
        settings = OnchainSettings(adapter="onchain", rpc_url=server.url + "/", max_attempts=1)

        async def go() -> list[Quote]:
            async with httpx.AsyncClient() as client:
                return await REGISTRY["onchain"].fetch(client, "chain", settings, keys, lambda: NOW)

        return asyncio.run(go())


def test_apr_and_apy_from_exchange_rate_growth() -> None:
    """rETH over the 7 days to 2024-09-05: APR and APY computed from the two real rates, observed at the block."""
    quotes = {q.key: q for q in fetch(["reth", "reth/apy"])}
    seconds = 7 * 86400
    assert quotes["reth"].value == pytest.approx((R1 / R0 - 1) * 365 * 86400 / seconds, rel=1e-12)
    assert quotes["reth/apy"].value == pytest.approx((R1 / R0) ** (365 * 86400 / seconds) - 1, rel=1e-12)
    assert 0.02 < quotes["reth"].value < 0.03  # 2.23 %: in line with the 2024 realised 2.84 % and falling
    assert quotes["reth"].observed_at == datetime(2024, 9, 5, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("rpc error", "JSON-RPC error"),
        ("empty result", "archive node"),
        (
            "timestamp not a date",
            "is not a date",
        ),  # found by tests/reliability/test_fuzz.py: was a ValueError
    ],
)
def test_rpc_failures_are_data_errors(broken: str, message: str) -> None:
    """A JSON-RPC error, an empty eth_call result or a block time no calendar has is rejected with the reason,
    never read as zero."""
    with pytest.raises(SourceDataError, match=message):
        fetch(["reth"], broken)


def test_growth_too_large_to_compound_is_an_infinite_apy_not_an_overflow() -> None:
    """Found by the fuzzing: a rate that grew 1e10-fold in a week raised OverflowError; now the APY is infinite
    (the rates layer rejects it as not finite) and the APR is what it is."""
    apr, apy = annualise(1.0, 1e10, 7 * 86400)
    assert apy == math.inf
    assert apr == pytest.approx((1e10 - 1) * 365 / 7)


def test_unknown_token_key_fails_config() -> None:
    """A key the adapter does not know is a configuration error naming the valid keys."""
    with pytest.raises(ValueError, match="has no key 'xyz'"):
        one_source_settings({"adapter": "onchain"}, "xyz")


def test_rpc_error_is_logged_by_the_rates_layer() -> None:
    """Through collect(): source_failed names the JSON-RPC error; no rate survives."""
    with FixtureServer() as server:
        server.rpc["/"] = lambda req: answer(req, "rpc error")
        settings = one_source_settings({"adapter": "onchain", "rpc_url": server.url + "/"}, "reth")

        async def go() -> Any:
            async with httpx.AsyncClient() as client:
                return await collect(settings, client, lambda: NOW)

        with capture_logs() as logs:
            book = asyncio.run(go())
    assert not book.rates
    assert any(e["event"] == "source_failed" and "missing trie node" in e["reason"] for e in logs)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(b"{}", delay=1.0), "timeout"),
        (Reply(b"oops", status=500, content_type="text/plain"), "HTTP 500"),
        (Reply(b"<html>gateway</html>", content_type="text/html"), "expected JSON"),
        (Reply(b'{"jsonrpc": "2.0", "id": 1, "result": "0x1'), "not valid JSON"),
    ],
    ids=["timeout", "500", "html", "truncated"],
)
def test_transport_faults_on_the_rpc(reply: Reply, message: str) -> None:
    """The JSON-RPC endpoint fails like any HTTP source: timeouts and 5xx are temporary, bad bodies data errors."""
    with FixtureServer() as server:
        server.routes["/"] = [reply]
        settings = OnchainSettings(
            adapter="onchain", rpc_url=server.url + "/", max_attempts=1, timeout_seconds=0.3
        )

        async def go() -> list[Quote]:
            async with httpx.AsyncClient() as client:
                return await REGISTRY["onchain"].fetch(client, "chain", settings, ["reth"], lambda: NOW)

        with pytest.raises(SourceError, match=message):
            asyncio.run(go())
