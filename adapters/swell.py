"""Swell swETH and rswETH APR endpoints: each answers a bare JSON number, in percent (docs/sources.md §2)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import RootModel, StrictFloat, StrictInt

from adapters.base import Quote, SourceSettings
from adapters.simple import PERCENT, fetch_one
from aggregator.core.clock import Clock


class SwellSettings(SourceSettings):
    adapter: Literal["swell"]
    base_url: str = "https://v3-public.svc.swellnetwork.io"
    restaking_base_url: str = "https://v3-lrt.svc.swellnetwork.io"


class _Doc(RootModel[StrictFloat | StrictInt]):
    pass


def _read(doc: _Doc) -> tuple[float, datetime | None]:
    return float(doc.root), None


class SwellAdapter:
    settings_model: ClassVar[type[SourceSettings]] = SwellSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"sweth", "rsweth"})

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: SwellSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        calls = [
            fetch_one(
                client,
                name,
                settings,
                f"{base.rstrip('/')}/api/tokens/{key}/apr",
                model=_Doc,
                read=_read,
                unit=PERCENT,
                key=key,
                now=now,
                label=f"Swell {key} apr",
                origin="swell-api",
            )
            for key, base in (("sweth", settings.base_url), ("rsweth", settings.restaking_base_url))
            if key in keys
        ]
        return list(await asyncio.gather(*calls))
