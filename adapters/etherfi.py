"""ether.fi weETH, `GET {base_url}/api/protocol/protocol-detail` → `7_day_apr` (staking) and `7_day_restaking_apr`
(EIGEN rewards), both percent (docs/sources.md §2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from adapters.base import Quote, SourceSettings
from adapters.http import get_json
from adapters.simple import PERCENT, parse
from aggregator.core.clock import Clock

Number = StrictFloat | StrictInt
KEYS = {"7_day_apr": "seven_day_apr", "7_day_restaking_apr": "seven_day_restaking_apr"}


class EtherfiSettings(SourceSettings):
    adapter: Literal["etherfi"]
    base_url: str = "https://app.ether.fi"


class _Doc(BaseModel):
    model_config = ConfigDict(populate_by_name=False)
    seven_day_apr: Number = Field(alias="7_day_apr")
    seven_day_restaking_apr: Number = Field(alias="7_day_restaking_apr")


class EtherfiAdapter:
    settings_model: ClassVar[type[SourceSettings]] = EtherfiSettings
    keys: ClassVar[frozenset[str] | None] = frozenset(KEYS)

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: EtherfiSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        wanted = [k for k in KEYS if k in keys]
        if not wanted:
            return []
        url = f"{settings.base_url.rstrip('/')}/api/protocol/protocol-detail"
        doc = parse(name, _Doc, await get_json(client, name, url, settings), url)
        fetched: datetime = now()
        return [
            Quote(
                source=name,
                key=k,
                value=float(getattr(doc, KEYS[k])) * PERCENT,
                observed_at=fetched,
                fetched_at=fetched,
                note=f"ether.fi {k} {getattr(doc, KEYS[k]):g} %",
            )
            for k in wanted
        ]
