"""`[notify]` in the config: the webhook and its delivery limits. The schema only; `aggregator.events.notify`
delivers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class NotifySettings(BaseModel):
    """`[notify]` in the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhook_url: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="one attempt, at most")
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_seconds: float = Field(default=2.0, ge=0, le=300)
    deadline_seconds: float = Field(
        default=20.0,
        gt=0,
        le=600,
        description="one delivery, every attempt and back-off included; also how long a stopping process "
        "waits for its queued deliveries",
    )
