"""The one contract every adapter keeps: `async fetch(client, settings, keys, now) -> list[Quote]`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

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

    timeout_seconds: float = Field(default=10.0, gt=0, le=300, description="per request")
    max_attempts: int = Field(default=3, ge=1, le=10, description="tries per cycle for temporary failures")
    backoff_base_seconds: float = Field(default=0.5, ge=0, le=60)
    backoff_max_seconds: float = Field(default=8.0, ge=0, le=600)
    max_retry_after_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="longer 429 waits: give up"
    )
    breaker_failures: int = Field(default=3, ge=1, le=100, description="failed cycles in a row that open it")
    breaker_cooldown_minutes: float = Field(default=30.0, gt=0, le=1440)
    max_age_hours: float = Field(default=48.0, gt=0)
    min_yield: float = Field(default=0.0, ge=-1, le=1, description="smaller yields are rejected")
    max_yield: float = Field(default=0.5, gt=0, le=10, description="larger yields are rejected as absurd")


class Adapter(Protocol):
    """What the registry holds: a settings model and an async fetch."""

    settings_model: ClassVar[type[SourceSettings]]
    keys: ClassVar[frozenset[str] | None]
    """The keys this source can quote, or None when any key may be asked for (pool ids, snapshot keys)."""

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: Any, keys: Sequence[str], now: Clock
    ) -> list[Quote]: ...
