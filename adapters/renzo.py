"""Renzo ezETH, `GET {base_url}/api/apr` → `{"apr": <percent>}` (SOURCES.md §2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, StrictFloat, StrictInt

from adapters.base import Clock, Quote, SourceSettings
from adapters.simple import PERCENT, fetch_one

Number = StrictFloat | StrictInt


class RenzoSettings(SourceSettings):
    adapter: Literal["renzo"]
    base_url: str = "https://app.renzoprotocol.com"


class _Doc(BaseModel):
    apr: Number


class RenzoAdapter:
    settings_model: ClassVar[type[SourceSettings]] = RenzoSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr"})

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: RenzoSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        if "apr" not in keys:
            return []
        url = f"{settings.base_url.rstrip('/')}/api/apr"
        return [
            await fetch_one(
                client,
                name,
                settings,
                url,
                model=_Doc,
                read=_read,
                unit=PERCENT,
                key="apr",
                now=now,
                label="Renzo ezETH apr",
            )
        ]


def _read(doc: _Doc) -> tuple[float, datetime | None]:
    return float(doc.apr), None
