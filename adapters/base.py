"""The one contract every adapter keeps: `async fetch(client, settings, keys, now) -> list[Quote]`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Protocol

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from aggregator.core.clock import Clock

MAX_TEXT = 512
"""Longest text taken from a source (notes, names) that is kept: longer is cut, so nothing a source sends can
grow the store by more than this per quote."""


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text`, cut to `limit` characters with a marker saying how long it was."""
    return text if len(text) <= limit else f"{text[: limit - 40]}… [cut from {len(text)} characters]"


BoundedText = Annotated[str, AfterValidator(clip)]


class Quote(BaseModel):
    """One observed number from one source, normalised to a fraction per year."""

    model_config = ConfigDict(frozen=True)

    source: str
    key: str
    value: float
    observed_at: datetime
    fetched_at: datetime
    note: BoundedText = ""
    url: BoundedText = ""
    """The URL that answered (of the source's ordered fallbacks); empty for sources that make no request."""
    origin: BoundedText = ""
    """What the number derives from (`aggregator.rates.lineage`): quotes sharing an origin are one observation in the
    cross-check. Empty: the quote is its own observation."""


class SourceSettings(BaseModel):
    """Settings every source has. Each adapter extends it with its own fields and a literal `adapter` tag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="per connect or read; deadline_seconds bounds the whole request",
    )
    max_attempts: int = Field(default=3, ge=1, le=10, description="tries per cycle for temporary failures")
    backoff_base_seconds: float = Field(default=0.5, ge=0, le=60)
    backoff_max_seconds: float = Field(default=8.0, ge=0, le=600)
    max_retry_after_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="longer 429 waits: give up"
    )
    breaker_failures: int = Field(default=3, ge=1, le=100, description="failed cycles in a row that open it")
    breaker_cooldown_minutes: float = Field(default=30.0, gt=0, le=1440)
    max_age_hours: float = Field(default=48.0, gt=0, le=87_600)
    min_yield: float = Field(default=0.0, ge=-1, le=1, description="smaller yields are rejected")
    max_yield: float = Field(default=0.5, gt=0, le=10, description="larger yields are rejected as absurd")
    deadline_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="total time for one request, retries and waits included"
    )
    max_response_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, le=1024**3, description="largest body kept, counted decompressed"
    )
    max_json_depth: int = Field(default=64, ge=2, le=512, description="deeper JSON is refused before parsing")
    max_json_containers: int = Field(
        default=250_000, ge=1, le=10_000_000, description="more JSON arrays/objects in one body are refused"
    )

    @model_validator(mode="before")
    @classmethod
    def _deadline_covers_timeout(cls, data: Any) -> Any:
        """Without an explicit deadline, a long per-read timeout raises the deadline to match it."""
        if isinstance(data, dict) and "deadline_seconds" not in data:
            timeout = data.get("timeout_seconds")
            default = cls.model_fields["deadline_seconds"].default
            if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > default:
                return {**data, "deadline_seconds": timeout}
        return data

    @model_validator(mode="after")
    def _deadline_not_shorter(self) -> SourceSettings:
        if self.deadline_seconds < self.timeout_seconds:
            raise ValueError(
                f"deadline_seconds = {self.deadline_seconds:g} is shorter than timeout_seconds = "
                f"{self.timeout_seconds:g}; deadline_seconds bounds the whole request (every attempt and wait), "
                "timeout_seconds each read: make the deadline at least the timeout"
            )
        return self


class Adapter(Protocol):
    """What the registry holds: a settings model and an async fetch."""

    settings_model: ClassVar[type[SourceSettings]]
    keys: ClassVar[frozenset[str] | None]
    """The keys this source can quote, or None when any key may be asked for (pool ids, snapshot keys)."""

    async def fetch(
        self, client: httpx.AsyncClient, name: str, settings: Any, keys: Sequence[str], now: Clock
    ) -> list[Quote]: ...
