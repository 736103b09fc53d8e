"""`[coordination]` in the config: replicas on one database with one leader (issue #18). The schema only;
`aggregator.coordination.leader` elects, the daemon schedules only while it leads.

Unset (`replica_id` absent), the daemon is the single process it always was: no leader lease, every trigger runs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CoordinationSettings(BaseModel):
    """`[coordination]` in the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    replica_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="this daemon's name among replicas sharing [database] url (letters, digits, . _ -); set, the "
        "daemon takes part in leadership and only the leader schedules rates and rebalances",
    )
    leader_lease_seconds: float = Field(
        default=15.0,
        ge=1.0,
        le=3600.0,
        description="the leader's lease: renewed every third of it; a leader that stops renewing (killed, "
        "suspended, cut off) is replaced at most this long after its last renewal",
    )
