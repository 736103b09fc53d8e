"""Leadership among replicas sharing one database: one lease row, `leader`, with an expiry and a fencing epoch.

Why the lease row and not a PostgreSQL session advisory lock: the row already exists for rebalances
(`Leases.acquire`) and carries a fencing epoch that a write checks in its own transaction, so a stale leader that
wakes after a pause (SIGSTOP, a suspended host) cannot write; an advisory lock belongs to a database session, gives
no token to check in the write, and outlives a partitioned leader until the server notices its connection is gone.
The row also works the same on SQLite, so the embedded default needs no second mechanism.

A replica calls `Leadership.tick` every `ttl / 3` seconds: the leader renews its row (only while the row still
carries its owner and epoch), a follower tries to take the row once it is free or expired. Transitions are logged
as `leader_elected` and `leadership_lost`, each with the replica id and the epoch.
"""

from __future__ import annotations

import time
from datetime import timedelta

import structlog
from sqlalchemy import update

from aggregator.coordination import Database, Fence, Leases, _naive_utc, leases
from aggregator.core.errors import ConfigError

LEADER = "leader"  # the lease row's name

log = structlog.get_logger(__name__)


class Leadership:
    """This replica's view of the `leader` lease in `store` (any `Database`; the `Store` is one); `replica` is its
    owner id (host:pid:token)."""

    def __init__(self, store: Database, replica: str, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ConfigError(
                f"leadership ttl_seconds = {ttl_seconds!r}: it must be a positive number of seconds"
            )
        self.store = store
        self.leases = Leases(store)
        self.replica = replica
        self.ttl_seconds = ttl_seconds
        self.fence: Fence | None = None

    @property
    def leading(self) -> bool:
        return self.fence is not None

    def tick(self) -> bool:
        """Renew (as leader) or campaign (as follower); True while this replica leads."""
        if self.fence is not None and not self._renew(self.fence):
            lost, self.fence = self.fence, None
            log.warning("leadership_lost", replica=self.replica, epoch=lost.epoch)
        if self.fence is None:
            self.fence = self.leases.acquire(LEADER, self.replica, self.ttl_seconds)
            if self.fence is not None:
                log.info("leader_elected", replica=self.replica, epoch=self.fence.epoch)
        return self.fence is not None

    def resign(self) -> None:
        """Give leadership up (on shutdown), so a follower need not wait for the expiry."""
        if self.fence is not None:
            fence, self.fence = self.fence, None
            self.leases.release(LEADER, fence.owner)
            log.info("leadership_lost", replica=self.replica, epoch=fence.epoch, reason="resigned")

    def _renew(self, fence: Fence) -> bool:
        """Push the expiry on, in one write that matches only while the row is still this fence's."""
        now = self.store.now()
        with self.store.transaction("renewing the leader lease") as conn:
            renewed = conn.execute(
                update(leases)
                .where(
                    leases.c.name == fence.name, leases.c.owner == fence.owner, leases.c.epoch == fence.epoch
                )
                .values(
                    expires_at=_naive_utc(now + timedelta(seconds=self.ttl_seconds)),
                    expires_monotonic=time.monotonic() + self.ttl_seconds,
                )
            )
        return renewed.rowcount == 1
