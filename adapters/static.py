"""A number from config with a note on where it came from, for yields no API publishes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import Quote, SourceSettings
from aggregator.core.clock import Clock


class StaticValue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    value: float = Field(ge=-1.0, le=10.0, allow_inf_nan=False, description="fraction per year")
    note: str = Field(min_length=1, description="where the number comes from")


class StaticSettings(SourceSettings):
    adapter: Literal["static"]
    values: dict[str, StaticValue]


class StaticAdapter:
    keys: ClassVar[frozenset[str] | None] = None
    settings_model: ClassVar[type[SourceSettings]] = StaticSettings

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: StaticSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        del client
        t = now()
        return [
            Quote(
                source=name,
                key=k,
                value=settings.values[k].value,
                observed_at=t,
                fetched_at=t,
                note=settings.values[k].note,
            )
            for k in keys
            if k in settings.values
        ]
