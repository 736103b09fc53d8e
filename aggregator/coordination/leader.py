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

import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import Connection, select, update

from aggregator.coordination import Database, Fence, Leases, _boot_id, _held, _naive_utc, leases
from aggregator.core.errors import ConfigError, LeadershipLostError, LeaseLostError, StoreError

LEADER = "leader"  # the lease row's name

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LeaderFence(Fence):
    """The leader lease's fence: a write checked with it is refused with LeadershipLostError once another replica
    took leadership (the message names the new leader)."""

    def check(self, conn: Connection) -> None:
        try:
            super().check(conn)
        except LeaseLostError as exc:
            row = conn.execute(
                select(leases.c.owner, leases.c.epoch).where(leases.c.name == self.name)
            ).first()
            holder = "nobody (it was released)" if row is None else f"{row.owner} (epoch {row.epoch})"
            raise LeadershipLostError(
                f"this replica ({self.owner}) led with epoch {self.epoch} when the cycle started, but the leader "
                f"lease is now held by {holder}: a stale leader's writes (proposals, rate collections) are "
                "refused, so nothing of this cycle was written"
            ) from exc


@dataclass(frozen=True)
class Holder:
    """Who holds the leader lease right now (read from the row)."""

    owner: str
    epoch: int

    @property
    def replica(self) -> str:
        """The replica id (the owner's last part: host:pid:replica_id)."""
        return self.owner.rsplit(":", 1)[-1]


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
        self._fence: LeaderFence | None = None
        self._renewed = 0.0  # monotonic time at which the last successful acquisition or renewal started
        self._lock = threading.Lock()

    @property
    def fence(self) -> LeaderFence | None:
        """This replica's leader fence while it leads; None once the lease may have expired (`expire`)."""
        self.expire()
        return self._fence

    @fence.setter
    def fence(self, value: LeaderFence | None) -> None:
        with self._lock:
            self._fence = value

    @property
    def leading(self) -> bool:
        return self.fence is not None

    def expire(self) -> bool:
        """Stop leading once `ttl_seconds` have passed since the last renewal started, even while that renewal (or
        the next) still waits on a database that does not answer (a partition: the query hangs, no error comes),
        so a partitioned leader stops scheduling before its row's expiry lets another replica take over. The
        daemon calls this from a watchdog thread of its own; True when leadership was dropped now."""
        with self._lock:
            lost = self._fence
            if lost is None or time.monotonic() - self._renewed < self.ttl_seconds:
                return False
            self._fence = None
        log.warning(
            "leadership_lost",
            replica=self.replica,
            epoch=lost.epoch,
            reason=f"no renewal for leader_lease_seconds={self.ttl_seconds:g} (the database did not answer)",
        )
        return True

    def tick(self) -> bool:
        """Renew (as leader) or campaign (as follower); True while this replica leads. A database that cannot
        be reached (`leadership_check_failed`) keeps a leader leading only until its lease would have expired:
        past that, another replica may hold it, so this one stops scheduling (its writes are fenced anyway)."""
        try:
            return self._tick()
        except StoreError as exc:
            log.warning("leadership_check_failed", replica=self.replica, error=str(exc))
            return self.fence is not None  # dropped by `expire` once no renewal came for the lease's length

    def _tick(self) -> bool:
        held = self.fence
        if held is not None:
            started = time.monotonic()
            renewed = self._renew(held)
            with self._lock:
                if self._fence is held and renewed:
                    self._renewed = started
                elif self._fence is held:
                    self._fence = None
                    log.warning("leadership_lost", replica=self.replica, epoch=held.epoch)
        if self.fence is None:
            started = time.monotonic()
            taken = self.leases.acquire(LEADER, self.replica, self.ttl_seconds)
            if taken is not None:
                with self._lock:
                    self._fence = LeaderFence(taken.name, taken.owner, taken.epoch)
                    self._renewed = started
                log.info("leader_elected", replica=self.replica, epoch=taken.epoch)
        return self.fence is not None

    def holder(self) -> Holder | None:
        """The replica holding the leader lease now (None when the row is absent or expired)."""
        with self.store.reading("reading the leader lease") as conn:
            row = conn.execute(select(leases).where(leases.c.name == LEADER)).first()
        if row is None or not _held(row, self.store.now(), _boot_id(), time.monotonic()):
            return None
        return Holder(row.owner, int(row.epoch))

    def resign(self) -> None:
        """Give leadership up (on shutdown), so a follower need not wait for the expiry."""
        fence = self.fence
        if fence is not None:
            self.fence = None
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
