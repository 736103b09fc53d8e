"""DefiLlama yields API, `GET {base_url}/pools` (SOURCES.md §1.1): one request serves every pool id.

Values are percent in the API and a fraction here. `/pools` carries no per-pool timestamp; it is re-computed
hourly (enrichment at :16), so the observation time is the fetch time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from adapters.base import Clock, Quote, SourceSettings
from adapters.errors import SourceDataError
from adapters.http import get_json

Field_ = Literal["apyBase", "apy", "apyMean30d", "apyBase7d"]


class DefiLlamaSettings(SourceSettings):
    adapter: Literal["defillama"]
    base_url: str = "https://yields.llama.fi"
    field: Field_ = Field(default="apyBase", description="which percent field to read")


class _Pool(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    pool: str
    project: str
    symbol: str
    apy: StrictFloat | StrictInt | None = None
    apyBase: StrictFloat | StrictInt | None = None  # noqa: N815 - the API's field names
    apyMean30d: StrictFloat | StrictInt | None = None  # noqa: N815
    apyBase7d: StrictFloat | StrictInt | None = None  # noqa: N815


class _Pools(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["success"]
    data: list[dict[str, object]]


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
        wanted = set(keys)
        out: list[Quote] = []
        for raw in pools.data:
            if raw.get("pool") not in wanted:
                continue
            try:
                pool = _Pool.model_validate(raw)
            except ValidationError as exc:
                raise SourceDataError(name, f"pool {raw.get('pool')}: {exc.errors()[0]['msg']}") from exc
            value = getattr(pool, settings.field)
            if value is None:
                continue
            out.append(
                Quote(
                    source=name,
                    key=pool.pool,
                    value=float(value) / 100.0,
                    observed_at=fetched,
                    fetched_at=fetched,
                    note=f"{pool.project} {pool.symbol} {settings.field} {value} %",
                )
            )
        return out
