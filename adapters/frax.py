"""Frax sfrxETH, `GET {base_url}/v2/frxeth/summary/latest` → `sfrxethApr` (percent) at `intervalTimestamp`
(SOURCES.md §2). The APR is in frxETH, which can trade off its ETH peg."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, StrictFloat, StrictInt

from adapters.base import Clock, Quote, SourceSettings
from adapters.simple import PERCENT, fetch_one

Number = StrictFloat | StrictInt


class FraxSettings(SourceSettings):
    adapter: Literal["frax"]
    base_url: str = "https://api.frax.finance"


class _Doc(BaseModel):
    intervalTimestamp: AwareDatetime  # noqa: N815
    sfrxethApr: Number  # noqa: N815


class FraxAdapter:
    settings_model: ClassVar[type[SourceSettings]] = FraxSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"sfrxeth"})

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: FraxSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        if "sfrxeth" not in keys:
            return []
        url = f"{settings.base_url.rstrip('/')}/v2/frxeth/summary/latest"
        return [
            await fetch_one(
                client,
                name,
                settings,
                url,
                model=_Doc,
                read=_read,
                unit=PERCENT,
                key="sfrxeth",
                now=now,
                label="Frax sfrxETH sfrxethApr",
            )
        ]


def _read(doc: _Doc) -> tuple[float, datetime | None]:
    return float(doc.sfrxethApr), doc.intervalTimestamp
