"""The one contract every adapter keeps: `async fetch(client, settings, keys, now) -> list[Quote]`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from adapters.errors import SourceDataError, TemporarySourceError

Clock = Callable[[], datetime]


class Quote(BaseModel):
    """One observed number from one source, normalised to a fraction per year."""

    model_config = ConfigDict(frozen=True)

    source: str
    key: str
    value: float
    observed_at: datetime
    fetched_at: datetime
    note: str = ""


class SourceSettings(BaseModel):
    """Settings every source has. Each adapter extends it with its own fields and a literal `adapter` tag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_age_hours: float = Field(default=48.0, gt=0)
    max_yield: float = Field(default=0.5, gt=0, le=10, description="larger yields are rejected as absurd")


class Adapter(Protocol):
    """What the registry holds: a settings model and an async fetch."""

    settings_model: ClassVar[type[SourceSettings]]

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: Any, keys: Sequence[str], now: Clock
    ) -> list[Quote]: ...


async def get_json(client: httpx.AsyncClient, source: str, url: str, timeout: float) -> Any:
    """GET a JSON document, translating transport failures into source errors."""
    try:
        response = await client.get(url, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise TemporarySourceError(source, f"timeout after {timeout:g}s: {url}") from exc
    except httpx.TransportError as exc:
        raise TemporarySourceError(source, f"connection failed: {type(exc).__name__}: {url}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TemporarySourceError(source, f"HTTP {response.status_code} from {url}")
    if response.status_code >= 400:
        raise SourceDataError(source, f"HTTP {response.status_code} from {url}")
    try:
        return response.json()
    except ValueError as exc:
        ctype = response.headers.get("content-type", "?")
        raise SourceDataError(source, f"body is not JSON (content-type {ctype}): {url}") from exc
