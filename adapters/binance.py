"""Binance wBETH, `getPurchasableProject` → `data.annualInterestRate`, a **fraction** (SOURCES.md §2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, StrictFloat, StrictInt

from adapters.base import Clock, Quote, SourceSettings
from adapters.simple import FRACTION, fetch_one

Number = StrictFloat | StrictInt


class BinanceSettings(SourceSettings):
    adapter: Literal["binance"]
    base_url: str = "https://www.binance.com"


class _Data(BaseModel):
    annualInterestRate: Number  # noqa: N815


class _Doc(BaseModel):
    data: _Data


class BinanceAdapter:
    settings_model: ClassVar[type[SourceSettings]] = BinanceSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr"})

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: BinanceSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        if "apr" not in keys:
            return []
        url = f"{settings.base_url.rstrip('/')}/bapi/earn/v1/public/pos/cftoken/project/getPurchasableProject"
        return [
            await fetch_one(
                client,
                name,
                settings,
                url,
                model=_Doc,
                read=_read,
                unit=FRACTION,
                key="apr",
                now=now,
                label="Binance wBETH annualInterestRate",
            )
        ]


def _read(doc: _Doc) -> tuple[float, datetime | None]:
    return float(doc.data.annualInterestRate), None
