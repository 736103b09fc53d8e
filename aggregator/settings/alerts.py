"""`[alerts]` in the config: where people are told (Apprise URLs) and what. The schema only;
`aggregator.events.alerts` sends."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class AlertSettings(BaseModel):
    """`[alerts]`: Apprise URLs (Slack, Discord, Telegram, e-mail, ntfy, json:// …). URLs carry secrets: set them
    from the environment, e.g. AGGREGATOR_ALERTS__URLS='["slack://T000/B000/XXXX"]'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    urls: tuple[SecretStr, ...] = Field(default=(), max_length=20)
    proposals: Literal["all", "rebalance", "none"] = Field(
        default="all", description="a message per proposal: every one, only those that move capital, or none"
    )
    deadline_seconds: float = Field(
        default=20.0,
        gt=0,
        le=600,
        description="one message to every URL, at most; also the flush on shutdown",
    )
    max_messages: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="at most this many messages in any `window_seconds`; the overflow is held and told in one "
        "summary message once the window lets another through (or when the process stops)",
    )
    window_seconds: float = Field(
        default=300.0, gt=0, le=86_400, description="the sliding window of `max_messages`"
    )
