"""Read the treasury's book from chain over JSON-RPC (issue #16): every call batched, all at one block number.

The calls and the arithmetic are `execution.book` (pure); this module is the transport. A missing, failed or
malformed answer raises SourceDataError naming the call, and no book comes out of it (nothing half-read is used).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from adapters.base import SourceSettings
from adapters.http import request_json
from aggregator.core.errors import SourceDataError
from execution.book import (
    ChainAnswerError,
    ChainBook,
    EthCall,
    assemble,
    decode_answer,
    first_round,
    second_round,
)
from execution.safe import DayBatch, simulated
from execution.simulate import judge

SOURCE = "chain"
COVERED = (
    "eth",
    "lido-steth",
    "rocketpool-reth",
    "eigenlayer-steth",
    "coinbase-cbeth",
    "binance-wbeth",
    "etherfi-weeth",
    "renzo-ezeth",
    "kelp-rseth",
)
"""The venues the chain reader reads; the others keep the book the service expected."""
MAX_ANSWER_BYTES = 4 * 1024 * 1024
log = structlog.get_logger(__name__)


class JsonRpc:
    """Batched JSON-RPC over HTTP through the sources' own request path (`adapters.http.request_json`): one total
    deadline, the answer's size capped while it streams (decompressed), deep JSON refused before parsing."""

    def __init__(self, url: str, timeout: float = 20.0) -> None:
        self.url = url
        self.settings = SourceSettings(
            timeout_seconds=timeout,
            deadline_seconds=timeout,
            max_attempts=1,
            max_response_bytes=MAX_ANSWER_BYTES,
        )

    def items(self, requests: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        """The answer items of `requests` (method, params), in order, each with its `result` or its `error`."""
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(requests)]

        async def post() -> Any:
            async with httpx.AsyncClient() as client:
                return await request_json(client, SOURCE, self.url, self.settings, method="POST", body=body)

        doc = asyncio.run(post())
        if not isinstance(doc, list):
            raise SourceDataError(
                SOURCE, f"{self.url}: a batch answer must be a JSON array, got {type(doc).__name__}"
            )
        by_id = {item.get("id"): item for item in doc if isinstance(item, dict)}
        out = []
        for i, (method, _) in enumerate(requests):
            item = by_id.get(i)
            if item is None:
                raise SourceDataError(SOURCE, f"{method} (batch id {i}): no answer in the batch")
            if "error" not in item and "result" not in item:
                raise SourceDataError(SOURCE, f"{method} (batch id {i}): answer has no result")
            out.append(item)
        return out

    def batch(self, requests: list[tuple[str, list[Any]]]) -> list[Any]:
        """The results of `requests` (method, params), in order; any error item is a SourceDataError."""
        out = []
        for i, ((method, _), item) in enumerate(zip(requests, self.items(requests), strict=True)):
            if "error" in item:
                raise SourceDataError(
                    SOURCE, f"{method} (batch id {i}): JSON-RPC error {str(item['error'])[:300]}"
                )
            out.append(item["result"])
        return out


def _hex_int(what: str, value: object) -> int:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 3:
        raise SourceDataError(SOURCE, f"{what}: expected a 0x-prefixed hex number, got {str(value)[:80]!r}")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise SourceDataError(SOURCE, f"{what}: not hex: {value[:80]!r}") from exc


def _round(rpc: JsonRpc, calls: list[EthCall], block: str, extra: list[tuple[str, list[Any]]]) -> list[Any]:
    requests = [*extra, *(("eth_call", [{"to": c.to, "data": c.data}, block]) for c in calls)]
    return rpc.batch(requests)


def read_book(rpc_url: str, address: str, timeout: float = 20.0) -> ChainBook:
    """What `address` holds at the latest block, read in two batches pinned to that block's number."""
    rpc = JsonRpc(rpc_url, timeout)
    [head] = rpc.batch([("eth_blockNumber", [])])
    number = _hex_int("eth_blockNumber", head)
    block = hex(number)
    calls = first_round(address)
    results = _round(rpc, calls, block, [("eth_getBalance", [address, block])])
    balance = _hex_int("eth_getBalance", results[0])
    try:
        answers = {c.key: decode_answer(c, r) for c, r in zip(calls, results[1:], strict=True)}
        later = second_round(answers)
        answers |= {
            c.key: decode_answer(c, r) for c, r in zip(later, _round(rpc, later, block, []), strict=True)
        }
        book = assemble(address, number, balance, answers)
    except ChainAnswerError as exc:
        raise SourceDataError(SOURCE, f"at block {number}: {exc}") from exc
    log.info("chain_book_read", address=address, block=number, holdings_eth=book.holdings_eth())
    return book


def simulate(
    rpc_url: str, safe: str, days: list[DayBatch], timeout: float = 20.0
) -> tuple[list[DayBatch], int]:
    """Every call of every day's batch as an `eth_call` from `safe` (with its value) at the latest block, in one
    JSON-RPC batch; never a transaction. The days with their checks (execution.simulate) and the block. A failed
    transport or a malformed answer raises SourceError: nothing is marked checked that was not."""
    rpc = JsonRpc(rpc_url, timeout)
    [head] = rpc.batch([("eth_blockNumber", [])])
    number = _hex_int("eth_blockNumber", head)
    requests = [
        ("eth_call", [{"from": safe, "to": c.to, "data": c.data, "value": hex(c.value)}, hex(number)])
        for d in days
        for c in d.calls
    ]
    answers = rpc.items(requests) if requests else []
    checks = []
    at = 0
    for d in days:
        mine = answers[at : at + len(d.calls)]
        at += len(d.calls)
        for i, item in enumerate(mine):
            if "error" not in item and not isinstance(item.get("result"), str):
                raise SourceDataError(
                    SOURCE, f"eth_call of {d.calls[i].signature} (day {d.day}): result is not hex data"
                )
        checks += judge(d.day, d.calls, mine)
    out = simulated(days, checks, number)
    log.info(
        "batch_simulated",
        block=number,
        calls=len(requests),
        blocked=[{"day": c.day, "step": c.step, "reason": c.reason} for c in checks if c.status == "blocked"],
    )
    return out, number
