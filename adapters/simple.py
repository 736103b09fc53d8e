"""Reading one JSON document per key (Lido, Swell): `read_one` GETs it and reads a number in a known unit (percent
or fraction) and, where the source says, when it was observed, leniently and strictly as `adapters.endpoints`
does (a JSON number or a numeric string; a missing or unusable field rejects that quote, naming the field, and the
source's other quotes still count). `parse` validates a payload with a typed model, naming the first bad field
(DefiLlama's `/pools` envelope and `/chart`). Sources with moved endpoints use `adapters.endpoints`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from adapters.base import Quote, SourceSettings
from adapters.endpoints import Extract, Reading, read_first
from adapters.errors import SourceDataError
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


def from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


async def read_one(
    client: httpx.AsyncClient,
    source: str,
    settings: SourceSettings,
    url: str,
    *,
    extract: Extract,
    unit: float,
    key: str,
    now: Clock,
    label: str,
    origin: str = "",
) -> Quote | str:
    """One quote from one endpoint, or why the answer gives none (naming the field, with the URL).

    `extract(doc, [key])` gives the key's Reading or the reason; a body of the wrong kind altogether raises
    SourceDataError (the source fails), as does an HTTP failure."""

    def named(doc: Any, keys: Sequence[str]) -> dict[str, Reading | str]:
        try:
            return extract(doc, keys)
        except SourceDataError as exc:
            raise SourceDataError(source, exc.reason) from exc

    got, url = await read_first(client, source, settings, [url], [key], named)
    reading = got[key]
    if isinstance(reading, str):
        return f"{reading}: {url}"
    fetched = now()
    return Quote(
        source=source,
        key=key,
        value=reading.value * unit,
        observed_at=reading.observed or fetched,
        fetched_at=fetched,
        note=f"{label} {reading.value:g} {'%' if unit == PERCENT else '(fraction)'}",
        url=url,
        origin=origin,
    )
