"""Swell swETH and rswETH APR endpoints: each answers a bare number, in percent (docs/sources.md §2).

Read leniently and strictly (`adapters.simple.read_one`): a JSON number or a numeric string (integrators read the
body as text and `parseFloat` it); anything else (an object, null, "n/a") rejects that quote, naming the body,
and the other key's quote still counts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import httpx

from adapters.base import Quote, SourceSettings
from adapters.endpoints import Quotes, Reading, number
from adapters.simple import PERCENT, read_one
from aggregator.core.clock import Clock


class SwellSettings(SourceSettings):
    adapter: Literal["swell"]
    base_url: str = "https://v3-public.svc.swellnetwork.io"
    restaking_base_url: str = "https://v3-lrt.svc.swellnetwork.io"


def _read(doc: Any, keys: Sequence[str]) -> dict[str, Reading | str]:
    value = number(doc, ())
    return dict.fromkeys(keys, value if isinstance(value, str) else Reading(value))


class SwellAdapter:
    settings_model: ClassVar[type[SourceSettings]] = SwellSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"sweth", "rsweth"})

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: SwellSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        wanted = [
            (key, base)
            for key, base in (("sweth", settings.base_url), ("rsweth", settings.restaking_base_url))
            if key in keys
        ]
        results = await asyncio.gather(
            *(
                read_one(
                    client,
                    name,
                    settings,
                    f"{base.rstrip('/')}/api/tokens/{key}/apr",
                    extract=_read,
                    unit=PERCENT,
                    key=key,
                    now=now,
                    label=f"Swell {key} apr",
                    origin="swell-api",
                )
                for key, base in wanted
            )
        )
        return Quotes(
            [r for r in results if isinstance(r, Quote)],
            {key: r for (key, _), r in zip(wanted, results, strict=True) if isinstance(r, str)},
        )
