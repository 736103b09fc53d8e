"""Coordination: the leases that let one rebalance run at a time, and the fencing that keeps a cycle that outlived
its lease from writing.

This floor sits beside the store and imports nothing of it: it works on any `Database` (the store satisfies the
protocol: a clock, guarded transactions), reaches the `leases` and `lease_epochs` tables by name (their schema and
migrations stay with the store), and hands the store a `Fence`, whose `check` is the first statement of a fenced
write (`Store.record_cycle(fence=...)`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    DateTime,
    Float,
    Integer,
    String,
    column,
    delete,
    insert,
    select,
    table,
    update,
)

from aggregator.core.clock import Clock
from aggregator.core.errors import LeaseLostError

# The lease tables as the store's migrations create them (aggregator/store/schema.py), named here without
# importing the store.
leases = table(
    "leases",
    column("name", String),
    column("owner", String),
    column("expires_at", DateTime),
    column("boot_id", String),
    column("expires_monotonic", Float),
    column("epoch", Integer),
)
lease_epochs = table("lease_epochs", column("name", String), column("epoch", Integer))

# The leases held right now by cycles of this process. A lease row naming this process but absent here was left
# by a release that failed (disk full, read-only): it is this process's own stale lease, free to take again.
_HELD: set[str] = set()
_HELD_LOCK = threading.Lock()


class Database(Protocol):
    """What leases need of a database (`aggregator.store.Store` satisfies it): its clock, and transactions whose
    database errors arrive as `StoreError`. `checked=False` writes even to a store known to be damaged (a release
    must not keep other processes waiting)."""

    @property
    def now(self) -> Clock: ...

    def transaction(self, what: str, *, checked: bool = True) -> AbstractContextManager[Connection]: ...

    def reading(self, what: str) -> AbstractContextManager[Connection]: ...


@dataclass(frozen=True)
class Fence:
    """One acquisition of a lease: its name, owner and epoch (the fencing token; every acquisition takes the next
    one). A write fenced by it commits only while the lease row still carries this owner and epoch."""

    name: str
    owner: str
    epoch: int

    def check(self, conn: Connection) -> None:
        """First statement of a fenced write: a no-op update that matches only while the lease is still this
        fence's, else LeaseLostError. Being a write, it takes the database's write lock (SQLite) or the row's lock
        (PostgreSQL) first, so no takeover can commit between this check and the transaction's commit."""
        match = (leases.c.name == self.name, leases.c.owner == self.owner, leases.c.epoch == self.epoch)
        if conn.execute(update(leases).where(*match).values(epoch=self.epoch)).rowcount == 1:
            return
        row = conn.execute(select(leases.c.owner, leases.c.epoch).where(leases.c.name == self.name)).first()
        holder = "nobody (it was released)" if row is None else f"{row.owner} (epoch {row.epoch})"
        raise LeaseLostError(
            f"the {self.name} lease of this cycle (epoch {self.epoch}) is now held by {holder}: this cycle "
            "outlived schedule.cycle_timeout_seconds and another took over, so nothing of it was written"
        )


@dataclass(frozen=True)
class Fences:
    """Several fences checked in one write, in order (the leader's, then the rebalance lease's)."""

    fences: tuple[Fence, ...]

    def check(self, conn: Connection) -> None:
        for fence in self.fences:
            fence.check(conn)


class Leases:
    """The leases kept in one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def acquire(
        self, name: str, owner: str, ttl_seconds: float, *, leader: Fence | None = None
    ) -> Fence | None:
        """Take the lease `name` if it is free, expired, held by a process on this host that no longer runs, or
        left by this process after a failed release; None if another holds it. With `leader` (the fence of the
        replicas' leader, checked first in the same transaction, so a stale leader raises its LeaseLostError and
        takes nothing), the lease is taken from any other process, whose write the new epoch then fences; only
        another cycle of this process makes it wait. The returned fence carries the
        next epoch of `name`: a write fenced with it is refused once anyone takes the lease after it.

        On this host expiry is read on the monotonic clock (shared by every process since boot), so a wall-clock
        jump can neither hand a live holder's lease to another cycle nor prolong a dead holder's; a lease from
        before a reboot is free. A holder on another host is trusted until its wall-clock expiry."""
        now = self.db.now()
        boot, mono = _boot_id(), time.monotonic()
        values = {
            "owner": owner,
            "expires_at": _naive_utc(now + timedelta(seconds=ttl_seconds)),
            "boot_id": boot,
            "expires_monotonic": mono + ttl_seconds,
        }
        with self.db.transaction("taking the rebalance lease") as conn:
            if leader is not None:
                leader.check(conn)
            epoch = _next_epoch(conn, name)  # a write first: the lock is ours before the lease row is read
            row = conn.execute(select(leases).where(leases.c.name == name)).first()
            mine = row is not None and row.owner.startswith(f"{socket.gethostname()}:{os.getpid()}:")
            if row is not None and _held(row, now, boot, mono) and (mine or leader is None):
                return None  # the epoch stays spent: epochs only need to grow
            if row is None:
                conn.execute(insert(leases).values(name=name, epoch=epoch, **values))
            else:
                conn.execute(
                    update(leases)
                    .where(leases.c.name == name, leases.c.owner == row.owner)
                    .values(epoch=epoch, **values)
                )
        with _HELD_LOCK:
            _HELD.add(owner)
        return Fence(name, owner, epoch)

    def release(self, name: str, owner: str) -> None:
        """Give the lease up. Even when the database refuses (disk full), this process stops counting it as held,
        so its next cycle recognises the row as its own stale lease instead of reporting another rebalance."""
        with _HELD_LOCK:
            _HELD.discard(owner)
        with self.db.transaction("releasing the rebalance lease", checked=False) as conn:
            conn.execute(delete(leases).where(leases.c.name == name, leases.c.owner == owner))

    def release_stale(self, name: str) -> bool:
        """Delete a lease this process left behind after a failed release (the daemon retries it every few
        seconds, so that other processes are not kept waiting for its expiry); True if one was removed."""
        prefix = f"{socket.gethostname()}:{os.getpid()}:"
        with self.db.reading("reading the rebalance lease") as conn:
            row = conn.execute(select(leases.c.owner).where(leases.c.name == name)).first()
        if row is None or not row.owner.startswith(prefix) or _is_held_here(row.owner):
            return False
        with self.db.transaction("releasing a stale rebalance lease", checked=False) as conn:
            gone = conn.execute(delete(leases).where(leases.c.name == name, leases.c.owner == row.owner))
        return bool(gone.rowcount)


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC)


def _next_epoch(conn: Connection, name: str) -> int:
    """The next fencing epoch of lease `name`, taken in the caller's transaction. The update comes first: it
    takes SQLite's write lock (waiting up to the busy timeout) before anything is read, so two processes taking
    the lease at once are serialised instead of one failing on a stale snapshot."""
    bumped = conn.execute(
        update(lease_epochs).where(lease_epochs.c.name == name).values(epoch=lease_epochs.c.epoch + 1)
    )
    if not bumped.rowcount:
        conn.execute(insert(lease_epochs).values(name=name, epoch=1))
    return int(conn.execute(select(lease_epochs.c.epoch).where(lease_epochs.c.name == name)).scalar_one())


def _is_held_here(owner: str) -> bool:
    with _HELD_LOCK:
        return owner in _HELD


def _held(row: Any, now: datetime, boot: str | None, mono: float) -> bool:
    """Whether a lease row still belongs to its holder (see `Leases.acquire`)."""
    if row.owner.startswith(f"{socket.gethostname()}:{os.getpid()}:") and not _is_held_here(row.owner):
        return False  # this process's own lease, left by a release that failed
    if row.owner.partition(":")[0] != socket.gethostname():
        return _aware(row.expires_at) > now
    if row.boot_id is None or boot is None:  # written before the monotonic deadline existed
        return _aware(row.expires_at) > now and _alive(row.owner)
    if row.boot_id != boot:
        return False  # its holder ran before this machine restarted
    return bool(row.expires_monotonic > mono) and _alive(row.owner)


def _boot_id() -> str | None:
    """This boot of this machine (Linux); None elsewhere, where the wall clock decides."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _alive(owner: str) -> bool:
    """Whether a lease owner (host:pid:token) may still be running: only a process on this host can be checked."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
