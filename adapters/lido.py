"""Lido stETH, `eth-api.lido.fi` (docs/sources.md §2): APR of the latest oracle report, or its 7-day moving average.
Percent, net of the 10 % protocol fee; the report time is the observation time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt

from adapters.base import Quote, SourceSettings
from adapters.simple import PERCENT, fetch_one, from_unix
from aggregator.core.clock import Clock

Number = StrictFloat | StrictInt
ORIGIN = "lido-api"  # Lido's oracle reports, as eth-api.lido.fi serves them


class LidoSettings(SourceSettings):
    adapter: Literal["lido"]
    base_url: str = "https://eth-api.lido.fi"


class _Point(BaseModel):
    model_config = ConfigDict(frozen=True)
    timeUnix: Number  # noqa: N815 - the API's names
    apr: Number


class _Last(BaseModel):
    data: _Point


class _SmaData(BaseModel):
    aprs: list[_Point]
    smaApr: Number  # noqa: N815


class _Sma(BaseModel):
    data: _SmaData


def _last(doc: _Last) -> tuple[float, datetime | None]:
    return float(doc.data.apr), from_unix(doc.data.timeUnix)


def _sma(doc: _Sma) -> tuple[float, datetime | None]:
    latest = max((p.timeUnix for p in doc.data.aprs), default=None)
    return float(doc.data.smaApr), None if latest is None else from_unix(latest)


class LidoAdapter:
    settings_model: ClassVar[type[SourceSettings]] = LidoSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr_last", "apr_sma"})

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: LidoSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        base = settings.base_url.rstrip("/")
        calls = []
        if "apr_last" in keys:
            calls.append(
                fetch_one(
                    client,
                    name,
                    settings,
                    f"{base}/v1/protocol/steth/apr/last",
                    model=_Last,
                    read=_last,
                    unit=PERCENT,
                    key="apr_last",
                    now=now,
                    label="Lido stETH last oracle-report APR",
                    origin=ORIGIN,
                )
            )
        if "apr_sma" in keys:
            calls.append(
                fetch_one(
                    client,
                    name,
                    settings,
                    f"{base}/v1/protocol/steth/apr/sma",
                    model=_Sma,
                    read=_sma,
                    unit=PERCENT,
                    key="apr_sma",
                    now=now,
                    label="Lido stETH 7-day SMA APR",
                    origin=ORIGIN,
                )
            )
        return list(await asyncio.gather(*calls))
