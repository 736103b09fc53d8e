"""Rocket Pool rETH, `GET {base_url}/api/apr` → `{"yearlyAPR": "<percent as a string>"}` (SOURCES.md §2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel

from adapters.base import Clock, Quote, SourceSettings
from adapters.simple import PERCENT, NumericString, fetch_one


class RocketpoolSettings(SourceSettings):
    adapter: Literal["rocketpool"]
    base_url: str = "https://api.rocketpool.net"


class _Doc(BaseModel):
    yearlyAPR: NumericString  # noqa: N815 - the API names it so; a string by design


class RocketpoolAdapter:
    settings_model: ClassVar[type[SourceSettings]] = RocketpoolSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr"})

    async def fetch(
        self,
        client: httpx.AsyncClient,
        name: str,
        settings: RocketpoolSettings,
        keys: Sequence[str],
        now: Clock,
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
                label="Rocket Pool rETH yearlyAPR",
            )
        ]


def _read(doc: _Doc) -> tuple[float, datetime | None]:
    return float(doc.yearlyAPR), None
