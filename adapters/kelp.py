"""Kelp rsETH, `GET {base_url}/rseth/apy` → `{"value": <percent>}` (SOURCES.md §2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, StrictFloat, StrictInt

from adapters.base import Clock, Quote, SourceSettings
from adapters.simple import PERCENT, fetch_one

Number = StrictFloat | StrictInt


class KelpSettings(SourceSettings):
    adapter: Literal["kelp"]
    base_url: str = "https://universe.kelpdao.xyz"


class _Doc(BaseModel):
    value: Number


class KelpAdapter:
    settings_model: ClassVar[type[SourceSettings]] = KelpSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apy"})

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: KelpSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        if "apy" not in keys:
            return []
        url = f"{settings.base_url.rstrip('/')}/rseth/apy"
        return [
            await fetch_one(
                client,
                name,
                settings,
                url,
                model=_Doc,
                read=_read,
                unit=PERCENT,
                key="apy",
                now=now,
                label="Kelp rsETH apy",
            )
        ]


def _read(doc: _Doc) -> tuple[float, datetime | None]:
    return float(doc.value), None
