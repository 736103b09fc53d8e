"""DefiLlama yields API (docs/sources.md §1): `GET {base_url}/pools` for current yields, `GET {base_url}/chart/{pool}`
for a pool's daily history.

Keys are pool ids (configIDs, UUIDs) or `project/chain/symbol` (e.g. `lido/Ethereum/STETH`), resolved from the same
`/pools` answer the way docs/sources.md advises: that project, chain and symbol, `poolMeta` null, largest TVL. One
`/pools` request per cycle serves every key. Values are percent in the API and a fraction here. `/pools` carries no
per-pool timestamp (it is recomputed hourly), so the observation time is the fetch time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from adapters.base import BoundedText, Quote, SourceSettings
from adapters.endpoints import Quotes, number
from adapters.errors import SourceDataError
from adapters.http import get_json
from adapters.simple import parse
from aggregator.core.clock import Clock

DERIVED_FROM: dict[str, str] = {
    # DefiLlama project -> what its pools' apyBase is computed from (yield-server `src/adaptors/<project>`,
    # 2026-08): the protocol's own API, or the token's exchange rate read on chain. A quote with the same origin
    # from another source is the same observation, not a second one (`aggregator.rates.lineage`).
    "lido": "lido-api",  # apyBase = eth-api.lido.fi /v1/protocol/steth/apr/last
    "rocket-pool": "rocketpool-api",  # apyBase = api.rocketpool.net /api/apr yearlyAPR
    "binance-staked-eth": "binance-api",  # apyBase = getPurchasableProject annualInterestRate × 100
    "kelp": "kelp-api",  # apyBase = universe.kelpdao.xyz /rseth/apy value
    "frax-ether": "frax-api",  # apy = api.frax.finance sfrxethApr
    "swell-liquid-staking": "swell-api",  # apyBase = the Swell swETH APR endpoint
    "coinbase-wrapped-staked-eth": "chain:cbeth",  # 1-day growth of cbETH.exchangeRate()
    "ether.fi-stake": "chain:weeth",  # 7-day growth of weETH.getRate()
    "renzo": "chain:ezeth",  # 30-day growth of ezETH's rate provider
}
"""Projects whose number is not in this table are taken as DefiLlama's own observation."""

IDENTITY = ("pool", "project", "symbol", "chain", "poolMeta")
Field_ = Literal["apyBase", "apy", "apyMean30d", "apyBase7d"]
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


class DefiLlamaSettings(SourceSettings):
    adapter: Literal["defillama"]
    base_url: str = "https://yields.llama.fi"
    field: Field_ = Field(default="apyBase", description="which percent field to read")
    max_response_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, le=1024**3, description="/pools is ~11 MB (2025)"
    )


class _Pool(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    pool: BoundedText
    project: BoundedText
    symbol: BoundedText
    chain: BoundedText = ""
    tvlUsd: StrictFloat | StrictInt | None = None  # noqa: N815
    poolMeta: BoundedText | None = None  # noqa: N815
    apy: StrictFloat | StrictInt | None = None
    apyBase: StrictFloat | StrictInt | None = None  # noqa: N815 - the API's field names
    apyMean30d: StrictFloat | StrictInt | None = None  # noqa: N815
    apyBase7d: StrictFloat | StrictInt | None = None  # noqa: N815


class _Pools(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["success"]
    data: list[dict[str, object]]


def resolve(pools: list[dict[str, object]], key: str) -> str | None:
    """The pool id a key names: the key itself if it is an id, else the canonical pool of project/chain/symbol."""
    if _UUID.match(key):
        return key
    parts = key.split("/")
    if len(parts) != 3:
        return None
    project, chain, symbol = parts
    matches = [
        p
        for p in pools
        if p.get("project") == project
        and p.get("chain") == chain
        and p.get("symbol") == symbol
        and p.get("poolMeta") is None
    ]
    best = max(matches, key=_tvl, default=None)
    return None if best is None else str(best.get("pool"))


def _tvl(pool: dict[str, object]) -> float:
    """A row's TVL for ranking; anything but a number ranks last."""
    tvl = pool.get("tvlUsd")
    return float(tvl) if isinstance(tvl, int | float) and not isinstance(tvl, bool) else -1.0


class ChartPoint(BaseModel):
    """One day of a pool's history, fractions per year."""

    model_config = ConfigDict(frozen=True)

    timestamp: datetime
    apy: float
    apy_base: float | None
    tvl_usd: float | None


class _ChartRow(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    timestamp: AwareDatetime
    tvlUsd: StrictFloat | StrictInt | None = None  # noqa: N815
    apy: StrictFloat | StrictInt
    apyBase: StrictFloat | StrictInt | None = None  # noqa: N815


class _Chart(BaseModel):
    status: Literal["success"]
    data: list[_ChartRow]


async def chart(
    client: httpx.AsyncClient, name: str, settings: DefiLlamaSettings, pool: str
) -> list[ChartPoint]:
    """A pool's daily history (`/chart/{pool}`), oldest first; the pool must be a configID (UUID)."""
    if not _UUID.match(pool):
        raise SourceDataError(name, f"/chart needs a pool configID (UUID), got {pool!r}")
    url = f"{settings.base_url.rstrip('/')}/chart/{pool}"
    return parse_chart(name, await get_json(client, name, url, settings), url)


def parse_chart(name: str, payload: object, where: str) -> list[ChartPoint]:
    """A `/chart/{pool}` answer (as received, or as cached by the backtest), oldest first."""
    doc = parse(name, _Chart, payload, where)
    return [
        ChartPoint(
            timestamp=r.timestamp,
            apy=float(r.apy) / 100.0,
            apy_base=None if r.apyBase is None else float(r.apyBase) / 100.0,
            tvl_usd=None if r.tvlUsd is None else float(r.tvlUsd),
        )
        for r in sorted(doc.data, key=lambda r: r.timestamp)
    ]


class DefiLlamaAdapter:
    keys: ClassVar[frozenset[str] | None] = None
    settings_model: ClassVar[type[SourceSettings]] = DefiLlamaSettings

    async def fetch(
        self,
        client: httpx.AsyncClient,
        name: str,
        settings: DefiLlamaSettings,
        keys: Sequence[str],
        now: Clock,
    ) -> list[Quote]:
        payload = await get_json(client, name, f"{settings.base_url.rstrip('/')}/pools", settings)
        fetched = now()
        try:
            pools = _Pools.model_validate(payload)
        except ValidationError as exc:
            raise SourceDataError(name, f"/pools payload malformed: {exc.errors()[0]['msg']}") from exc
        ids = {k: resolve(pools.data, k) for k in keys}
        # pool id -> every key naming it: an id and a project/chain/symbol name may be the same pool
        wanted: dict[str, list[str]] = {}
        for key, named in ids.items():
            if named is not None:
                wanted.setdefault(named, []).append(key)
        url = f"{settings.base_url.rstrip('/')}/pools"
        rejected: dict[str, str] = {}  # why a key has no quote; cleared when its pool's row gives one
        for k, named in ids.items():
            if named is None:
                rejected[k] = f"no pool for {k} in /pools (project/chain/symbol with poolMeta null)"
            else:
                rejected[k] = f"no pool {named} in /pools"
        out: list[Quote] = []
        for raw in pools.data:
            pool_id = raw.get("pool")
            if not isinstance(pool_id, str) or pool_id not in wanted:  # a malformed row is not ours to trust
                continue
            # lenient and strict, as adapters.endpoints: the yield may be a JSON number or a numeric string; a
            # wanted row with a missing or unusable field rejects its keys' quotes, naming the field (the other
            # pools still quote)
            value = number(raw, (settings.field,))
            if isinstance(value, str):
                missing = value.endswith(("is missing from the answer", "is null"))
                why = f"field {settings.field} is null or missing" if missing else value
                for k in wanted[pool_id]:
                    rejected[k] = f"pool {pool_id}: {why}"
                continue
            try:
                pool = _Pool.model_validate(
                    {f: raw[f] for f in IDENTITY if f in raw}
                )  # what the quote's note names
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "(the row)"
                for k in wanted[pool_id]:
                    rejected[k] = f"pool {pool_id}: field {field}: {err['msg']}"
                continue
            for k in wanted[pool_id]:
                rejected.pop(k, None)
            out.extend(
                Quote(
                    source=name,
                    key=key,
                    value=float(value) / 100.0,
                    observed_at=fetched,
                    fetched_at=fetched,
                    note=f"{pool.project} {pool.symbol} {settings.field} {value} %",
                    url=url,
                    origin=DERIVED_FROM.get(pool.project, ""),
                )
                for key in wanted[pool_id]
            )
        return Quotes(out, rejected)
