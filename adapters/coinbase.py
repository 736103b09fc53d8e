"""Coinbase cbETH, `GET {base_url}/wrapped-assets/CBETH/` → `apy` as a string **fraction** (SOURCES.md §2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel

from adapters.base import Clock, Quote, SourceSettings
from adapters.simple import FRACTION, NumericString, fetch_one


class CoinbaseSettings(SourceSettings):
    adapter: Literal["coinbase"]
    base_url: str = "https://api.exchange.coinbase.com"


class _Doc(BaseModel):
    apy: NumericString


class CoinbaseAdapter:
    settings_model: ClassVar[type[SourceSettings]] = CoinbaseSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apy"})

    async def fetch(
        self,
        client: httpx.AsyncClient,
        name: str,
        settings: CoinbaseSettings,
        keys: Sequence[str],
        now: Clock,
    ) -> list[Quote]:
        if "apy" not in keys:
            return []
        url = f"{settings.base_url.rstrip('/')}/wrapped-assets/CBETH/"
        return [
            await fetch_one(
                client,
                name,
                settings,
                url,
                model=_Doc,
                read=_read,
                unit=FRACTION,
                key="apy",
                now=now,
                label="Coinbase cbETH apy",
            )
        ]


def _read(doc: _Doc) -> tuple[float, datetime | None]:
    return float(doc.apy), None
