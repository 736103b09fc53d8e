"""Lido stETH, `eth-api.lido.fi` (docs/sources.md §2): APR of the latest oracle report, or its 7-day moving average.
Percent, net of the 10 % protocol fee; the report time is the observation time.

Read leniently and strictly (`adapters.simple.read_one`): the APR and the report time may be JSON numbers or
numeric strings; a missing or unusable one rejects that quote (`quote_rejected` naming the field, e.g.
`data.apr`), and the other key's quote still counts. Only an answer that is not a JSON object fails the source."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal

import httpx

from adapters.base import Quote, SourceSettings
from adapters.endpoints import Quotes, Reading, number
from adapters.errors import SourceDataError
from adapters.simple import PERCENT, from_unix, read_one
from aggregator.core.clock import Clock

ORIGIN = "lido-api"  # Lido's oracle reports, as eth-api.lido.fi serves them


class LidoSettings(SourceSettings):
    adapter: Literal["lido"]
    base_url: str = "https://eth-api.lido.fi"


def _object(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise SourceDataError("", f"expected a JSON object, got {type(doc).__name__}")
    return doc


def _time(seconds: float, field: str) -> datetime | str:
    """A report time, or why it is unusable: a number no calendar has (year 0, past 9999, NaN) names the field."""
    try:
        return from_unix(seconds)
    except (ValueError, OverflowError, OSError):
        return f"field {field} is not a usable time: {seconds:g}"


def _last(doc: Any, keys: Sequence[str]) -> dict[str, Reading | str]:
    """`{"data": {"timeUnix": …, "apr": <percent>}, "meta": …}`."""
    body = _object(doc)
    apr = number(body, ("data", "apr"))
    when = number(body, ("data", "timeUnix"))
    if isinstance(apr, str):
        return dict.fromkeys(keys, apr)
    at = when if isinstance(when, str) else _time(when, "data.timeUnix")
    if isinstance(at, str):
        return dict.fromkeys(keys, at)
    return dict.fromkeys(keys, Reading(apr, at))


def _sma(doc: Any, keys: Sequence[str]) -> dict[str, Reading | str]:
    """`{"data": {"aprs": [{"timeUnix": …, "apr": …}, …], "smaApr": <percent>}, "meta": …}`: observed at the
    newest report of the window (the fetch time when the window is empty)."""
    body = _object(doc)
    sma = number(body, ("data", "smaApr"))
    if isinstance(sma, str):
        return dict.fromkeys(keys, sma)
    aprs = body["data"].get("aprs")
    if not isinstance(aprs, list):
        return dict.fromkeys(keys, "field data.aprs is missing from the answer or not a list")
    times = [number(body, ("data", "aprs", i, "timeUnix")) for i in range(len(aprs))]
    bad = next((t for t in times if isinstance(t, str)), None)
    if bad is not None:
        return dict.fromkeys(keys, bad)
    latest = max((t for t in times if not isinstance(t, str)), default=None)
    at = None if latest is None else _time(latest, "data.aprs.timeUnix")
    if isinstance(at, str):
        return dict.fromkeys(keys, at)
    return dict.fromkeys(keys, Reading(sma, at))


class LidoAdapter:
    settings_model: ClassVar[type[SourceSettings]] = LidoSettings
    keys: ClassVar[frozenset[str] | None] = frozenset({"apr_last", "apr_sma"})

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: LidoSettings, keys: Sequence[str], now: Clock
    ) -> list[Quote]:
        base = settings.base_url.rstrip("/")
        wanted = [
            (key, path, read, label)
            for key, path, read, label in (
                ("apr_last", "last", _last, "Lido stETH last oracle-report APR"),
                ("apr_sma", "sma", _sma, "Lido stETH 7-day SMA APR"),
            )
            if key in keys
        ]
        results = await asyncio.gather(
            *(
                read_one(
                    client,
                    name,
                    settings,
                    f"{base}/v1/protocol/steth/apr/{path}",
                    extract=read,
                    unit=PERCENT,
                    key=key,
                    now=now,
                    label=label,
                    origin=ORIGIN,
                )
                for key, path, read, label in wanted
            )
        )
        return Quotes(
            [r for r in results if isinstance(r, Quote)],
            {key: r for (key, *_), r in zip(wanted, results, strict=True) if isinstance(r, str)},
        )
