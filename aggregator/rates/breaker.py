"""A circuit breaker per source: after `failures` failed cycles in a row the source is skipped for `cooldown`,
then tried once (half-open); a success closes it, a failure opens it again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    failures: int
    cooldown: timedelta
    consecutive: int = 0
    opened_at: datetime | None = None

    def state(self, now: datetime) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        # A clock that went back past the opening would keep the source out for the jump plus the cooldown:
        # try it again instead (a failure re-opens it from the new time).
        if now - self.opened_at >= self.cooldown or now < self.opened_at:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allows(self, now: datetime) -> bool:
        return self.state(now) is not BreakerState.OPEN

    def record(self, ok: bool, now: datetime) -> BreakerState:
        """Record one cycle's outcome; returns the new state."""
        if ok:
            self.consecutive, self.opened_at = 0, None
            return BreakerState.CLOSED
        self.consecutive += 1
        if self.opened_at is not None or self.consecutive >= self.failures:
            self.opened_at = now
        return self.state(now)


@dataclass
class SourceHealth:
    """The breakers of every source, kept across cycles by whoever runs them (the daemon)."""

    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def breaker(self, name: str, failures: int, cooldown_minutes: float) -> CircuitBreaker:
        if name not in self.breakers:
            self.breakers[name] = CircuitBreaker(failures, timedelta(minutes=cooldown_minutes))
        return self.breakers[name]
