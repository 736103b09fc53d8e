"""Typed reading for the sources whose APIs document strict JSON numbers (Lido, Swell): GET one JSON document,
validate it with a frozen model, read a number in a known unit (percent or fraction) and, where the source says,
when it was observed. Sources with moved endpoints or numbers sent as strings use `adapters.endpoints`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from adapters.base import Quote, SourceSettings
from adapters.errors import SourceDataError
from adapters.http import get_json
from aggregator.core.clock import Clock

M = TypeVar("M", bound=BaseModel)
PERCENT = 0.01
FRACTION = 1.0


def parse(source: str, model: type[M], payload: Any, what: str) -> M:
    """Validate a payload, naming the first bad field on failure."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(document)"
        raise SourceDataError(source, f"{what}: field {field}: {err['msg']}") from exc


async def fetch_one(
    client: httpx.AsyncClient,
    source: str,
    settings: SourceSettings,
    url: str,
    *,
    model: type[M],
    read: Callable[[M], tuple[float, datetime | None]],
    unit: float,
    key: str,
    now: Clock,
    label: str,
    origin: str = "",
) -> Quote:
    """One quote from one endpoint: `read` returns (value in the source's unit, observation time or None)."""
    payload = await get_json(client, source, url, settings)
    fetched = now()
    value, observed = read(parse(source, model, payload, url))
    return Quote(
        source=source,
        key=key,
        value=value * unit,
        observed_at=observed or fetched,
        fetched_at=fetched,
        note=f"{label} {value:g} {'%' if unit == PERCENT else '(fraction)'}",
        url=url,
        origin=origin,
    )


def from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
