"""Yields from exchange-rate growth read on chain over JSON-RPC `eth_call` (docs/sources.md §3): no third party.

    APR = (R_t / R_{t−Δ} − 1) · (365·86400 / Δt)        APY = (R_t / R_{t−Δ})^(365·86400 / Δt) − 1

R is read at the latest block and at the block `window_days` earlier (12-second slots, so 7,200 blocks a day; Δt
is taken from the two blocks' own timestamps). Reading an old block needs an archive node. Keys are token names
(`reth`) for the APR and `reth/apy` for the APY. sfrxETH's rate is in frxETH, which can trade off its ETH peg.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from adapters.base import Quote, SourceSettings
from adapters.errors import SourceDataError
from adapters.http import request_json
from aggregator.core.clock import Clock

ONE = f"{10**18:064x}"
TOKENS: dict[str, tuple[str, str]] = {
    # name: (contract, calldata) — selectors from docs/sources.md §3; every rate is 1e18-scaled ETH per token
    "steth": ("0xae7ab96520DE3A18E5e111B5EaAb095312D7fE84", "0x7a28fb88" + ONE),  # getPooledEthByShares(1e18)
    "wsteth": ("0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0", "0x035faf82"),  # stEthPerToken()
    "reth": ("0xae78736Cd615f374D3085123A210448E74Fc6393", "0xe6aa216c"),  # getExchangeRate()
    "cbeth": ("0xBe9895146f7AF43049ca1c1AE358B0541Ea49704", "0x3ba0b9a9"),  # exchangeRate()
    "wbeth": ("0xa2E3356610840701BDf5611a53974510Ae27E2e1", "0x3ba0b9a9"),  # exchangeRate()
    "sfrxeth": ("0xac3E018457B222d93114458476f3E3416Abbe38F", "0x99530b06"),  # pricePerShare() (frxETH)
    "weeth": ("0xCd5fE23C85820F7B72D0926FC9b05b43E359b7ee", "0x679aefce"),  # getRate()
    "ezeth": ("0x387dBc0fB00b26fb085aa658527D5BE98302c84C", "0x679aefce"),  # rate provider getRate()
    "rseth": ("0x349A73444b1a310BAe67ef67973022020d70020d", "0xb4b46434"),  # LRTOracle rsETHPrice()
    "sweth": ("0xf951E335afb289353dc249e82926178EaC7DEd78", "0x679aefce"),  # getRate()
    "rsweth": ("0xFAe103DC9cf190eD75350761e95403b7b8aFa6c0", "0x679aefce"),  # getRate()
    "pufeth": ("0xD9A442856C234a39a81a089C06451EBAa4306a72", "0x07a2d13a" + ONE),  # convertToAssets(1e18)
    "meth": ("0xe3cBd06D7dadB3F4e6557bAb7EdD924CD1489E8f", "0x5890c11c" + ONE),  # mETHToETH(1e18)
}
YEAR_SECONDS = 365 * 86400


def annualise(r0: float, r1: float, seconds: float) -> tuple[float, float]:
    """(APR, APY) of an exchange rate that went from `r0` to `r1` in `seconds`; the backtest uses the same.

    A growth too large to compound into a float gives an infinite APY, which the rates layer (and the backtest)
    rejects as not finite, rather than an OverflowError."""
    growth = r1 / r0
    try:
        apy = growth ** (YEAR_SECONDS / seconds) - 1.0
    except OverflowError:
        apy = math.inf
    return (growth - 1.0) * YEAR_SECONDS / seconds, apy


class OnchainSettings(SourceSettings):
    adapter: Literal["onchain"]
    rpc_url: str = "https://ethereum-rpc.publicnode.com"
    window_days: float = Field(default=7.0, gt=0, le=365)
    blocks_per_day: int = Field(default=7200, gt=0, le=1_000_000, description="12-second slots")


def _hex_int(source: str, what: str, value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) < 3:
        raise SourceDataError(source, f"{what}: expected a 0x-prefixed hex number, got {value!r}")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise SourceDataError(source, f"{what}: not hex: {value!r}") from exc


class _Rpc:
    def __init__(self, client: httpx.AsyncClient, source: str, settings: OnchainSettings) -> None:
        self.client, self.source, self.settings = client, source, settings

    async def call(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        doc = await request_json(
            self.client, self.source, self.settings.rpc_url, self.settings, method="POST", body=body
        )
        if not isinstance(doc, dict):
            raise SourceDataError(self.source, f"{method}: answer is not a JSON-RPC object")
        if "error" in doc:
            raise SourceDataError(self.source, f"{method}: JSON-RPC error {doc['error']}")
        if "result" not in doc:
            raise SourceDataError(self.source, f"{method}: answer has no result")
        return doc["result"]

    async def block_time(self, number: int) -> datetime:
        block = await self.call("eth_getBlockByNumber", [hex(number), False])
        if not isinstance(block, dict):
            raise SourceDataError(self.source, f"block {number} not found (is the node an archive node?)")
        stamp = _hex_int(self.source, "block timestamp", block.get("timestamp"))
        try:
            return datetime.fromtimestamp(stamp, tz=UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise SourceDataError(self.source, f"block {number}: timestamp {stamp} is not a date") from exc

    async def rate(self, token: str, number: int) -> float:
        to, data = TOKENS[token]
        raw = await self.call("eth_call", [{"to": to, "data": data}, hex(number)])
        if raw in ("0x", None) or not isinstance(raw, str) or len(raw) < 66:
            raise SourceDataError(
                self.source,
                f"{token}: empty eth_call result at block {number} "
                "(no contract there then, or not an archive node)",
            )
        value = _hex_int(self.source, f"{token} rate", raw[:66]) / 1e18
        if value <= 0:
            raise SourceDataError(self.source, f"{token}: non-positive rate {value} at block {number}")
        return value


class OnchainAdapter:
    settings_model: ClassVar[type[SourceSettings]] = OnchainSettings
    keys: ClassVar[frozenset[str] | None] = frozenset(TOKENS) | frozenset(f"{t}/apy" for t in TOKENS)

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: OnchainSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        tokens = sorted({k.removesuffix("/apy") for k in keys if k.removesuffix("/apy") in TOKENS})
        if not tokens:
            return []
        rpc = _Rpc(client, name, settings)
        latest = _hex_int(name, "eth_blockNumber", await rpc.call("eth_blockNumber", []))
        earlier = latest - round(settings.window_days * settings.blocks_per_day)
        t1, t0 = await asyncio.gather(rpc.block_time(latest), rpc.block_time(earlier))
        seconds = (t1 - t0).total_seconds()
        if seconds <= 0:
            raise SourceDataError(name, f"block {earlier} is not older than block {latest}")
        rates = await asyncio.gather(
            *(asyncio.gather(rpc.rate(t, latest), rpc.rate(t, earlier)) for t in tokens)
        )
        fetched = now()
        out: list[Quote] = []
        for token, (r1, r0) in zip(tokens, rates, strict=True):
            apr, apy = annualise(r0, r1, seconds)
            days = seconds / 86400
            values = {token: apr, f"{token}/apy": apy}
            for key, value in values.items():
                if key in keys:
                    out.append(
                        Quote(
                            source=name,
                            key=key,
                            value=value,
                            observed_at=t1,
                            fetched_at=fetched,
                            note=f"{token} rate {r0:.9f} -> {r1:.9f} over {days:.2f} d "
                            f"(blocks {earlier}..{latest})",
                            url=settings.rpc_url,
                            origin=f"chain:{token}",
                        )
                    )
        return out
