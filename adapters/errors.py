"""Source errors. httpx errors never leave `adapters/`: they are translated here at the boundary."""

from __future__ import annotations

MAX_REASON = 1000
"""Longest failure reason kept: a reason can quote what a source sent, and it is logged and stored."""


class SourceError(Exception):
    """A source failed this cycle."""

    def __init__(self, source: str, reason: str) -> None:
        if len(reason) > MAX_REASON:
            reason = f"{reason[: MAX_REASON - 40]}… [cut from {len(reason)} characters]"
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class TemporarySourceError(SourceError):
    """Timeout, connection error, 429 or 5xx: worth retrying later."""

    retry_after: float | None = None


class SourceDataError(SourceError):
    """The source answered with something we cannot trust (malformed, renamed fields, wrong units)."""
