"""The shape most protocol APIs share: GET one JSON document, validate it with a frozen model, read a number in a
known unit (percent or fraction) and, where the source says, when it was observed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, StringConstraints, ValidationError

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
    )


def from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


NumericString = Annotated[
    str, StringConstraints(strict=True, pattern=r"^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$")
]
"""A number the API documents as a string (Rocket Pool's yearlyAPR, Coinbase's apy): digits only, then float()."""


class HttpSourceSettings(SourceSettings):
    """Settings of a source reached at a base URL."""

    base_url: str


class SingleEndpoint:
    """An adapter that serves one key from one GET: subclasses declare the path, payload model, reader, unit."""

    settings_model: ClassVar[type[SourceSettings]]
    keys: ClassVar[frozenset[str] | None]
    path: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    unit: ClassVar[float]
    label: ClassVar[str]

    @staticmethod
    def read(doc: Any) -> tuple[float, datetime | None]:
        raise NotImplementedError

    async def fetch(
        self,
        client: httpx.AsyncClient,
        name: str,
        settings: HttpSourceSettings,
        keys: Sequence[str],
        now: Clock,
    ) -> list[Quote]:
        assert self.keys is not None and len(self.keys) == 1
        (key,) = self.keys
        if key not in keys:
            return []
        url = f"{settings.base_url.rstrip('/')}{self.path}"
        quote = await fetch_one(
            client,
            name,
            settings,
            url,
            model=self.model,
            read=self.read,
            unit=self.unit,
            key=key,
            now=now,
            label=self.label,
        )
        return [quote]
