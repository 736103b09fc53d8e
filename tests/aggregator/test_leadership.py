"""Leadership among replicas on one database (issue 18), on SQLite and on PostgreSQL: one leader at a time, a
follower takes over once the leader's row expires, and the old leader learns it lost (events with replica ids)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from structlog.testing import capture_logs

from aggregator.coordination.leader import Leadership
from aggregator.core.errors import ConfigError, LeaseLostError, StoreError
from aggregator.rates.collect import RateBook
from aggregator.store import CONNECT_TIMEOUT_SECONDS, IDLE_IN_TRANSACTION_SECONDS, Store
from tests.helpers.postgres import PostgresServer, PostgresUnavailableError
from tests.helpers.tcp_proxy import BlackHoleProxy

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
A, B = "replica-a:1:a", "replica-b:2:b"  # other hosts: expiry is judged by the (controlled) wall clock


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_one_leader_then_a_takeover_after_expiry_and_the_old_leader_learns_it(store_url: str) -> None:
    clock_a, clock_b = Clock(T0), Clock(T0)
    a = Leadership(Store(store_url, now=clock_a), A, ttl_seconds=30)
    b = Leadership(Store(store_url, now=clock_b), B, ttl_seconds=30)
    with capture_logs() as events:
        assert a.tick() and not b.tick()
        clock_a.at = clock_b.at = T0 + timedelta(seconds=20)
        assert a.tick() and not b.tick()  # renewed: still A's at 20 s + 30 s
        clock_b.at = T0 + timedelta(seconds=45)
        assert not b.tick()  # A's renewal holds the row until 50 s
        clock_b.at = T0 + timedelta(seconds=51)  # A paused past its expiry
        assert b.tick()
        assert not a.tick()  # A wakes: its renewal matches nothing, and B's row is live
    assert a.fence is None and b.fence is not None
    got = [(e["event"], e["replica"]) for e in events if e["event"] in {"leader_elected", "leadership_lost"}]
    assert got == [("leader_elected", A), ("leader_elected", B), ("leadership_lost", A)]
    assert b.fence.epoch > 1


def test_a_stale_leaders_fenced_write_is_refused(store_url: str) -> None:
    """The leader's fence guards its writes: once a follower took over, the old fence writes nothing."""
    clock_a, clock_b = Clock(T0), Clock(T0)
    store_a = Store(store_url, now=clock_a)
    a = Leadership(store_a, A, ttl_seconds=30)
    b = Leadership(Store(store_url, now=clock_b), B, ttl_seconds=30)
    assert a.tick()
    stale = a.fence
    assert stale is not None
    clock_b.at = T0 + timedelta(seconds=31)
    assert b.tick()
    empty = RateBook(fetched_at=T0, rates=[], rejected=[], failed_sources={}, missing=[])
    with pytest.raises(LeaseLostError, match="leader lease"):
        store_a.record_cycle(empty, "schedule", "run-a", None, apply=False, fence=stale)
    assert store_a.collection_count() == 0


def test_a_resigned_leader_hands_over_at_once(store_url: str) -> None:
    a = Leadership(Store(store_url, now=Clock(T0)), A, ttl_seconds=30)
    b = Leadership(Store(store_url, now=Clock(T0)), B, ttl_seconds=30)
    assert a.tick() and not b.tick()
    a.resign()
    assert b.tick() and not a.leading


def test_a_nonpositive_ttl_is_refused_with_what_is_valid(store_url: str) -> None:
    with pytest.raises(ConfigError, match="must be a positive number of seconds"):
        Leadership(Store(store_url), A, ttl_seconds=0)


def test_a_leader_suspended_inside_a_transaction_does_not_block_the_takeover(
    postgres_server: PostgresServer | PostgresUnavailableError,
) -> None:
    """PostgreSQL: a leader paused in the middle of its fenced write holds the leader row's lock. The server ends
    its session once it has idled in the transaction past IDLE_IN_TRANSACTION_SECONDS, so a follower takes over
    (without it, the follower's campaign waits on the lock for as long as the leader stays paused)."""
    if isinstance(postgres_server, PostgresUnavailableError):
        pytest.skip(f"PostgreSQL unavailable: {postgres_server}")
    url = postgres_server.database()
    clock_a, clock_b = Clock(T0), Clock(T0 + timedelta(seconds=31))
    store_a, store_b = (
        Store(url, busy_timeout_seconds=1, now=clock_a),
        Store(url, busy_timeout_seconds=1, now=clock_b),
    )
    a = Leadership(store_a, A, ttl_seconds=30)
    b = Leadership(store_b, B, ttl_seconds=30)
    try:
        assert a.tick()
        assert a.fence is not None
        paused = store_a.engine.connect()
        paused.begin()
        a.fence.check(paused)  # the first statement of A's write: the leader row is locked, then A "pauses"
        started = time.monotonic()
        with capture_logs() as events:
            while not b.tick():  # the lease expired (B's clock); the lock times out until the server ends A
                assert time.monotonic() - started < IDLE_IN_TRANSACTION_SECONDS + 20, events
                time.sleep(0.5)
        assert any(e["event"] == "leadership_check_failed" for e in events)  # blocked by the lock meanwhile
        with pytest.raises(DBAPIError, match=r"idle-in-transaction|terminat|closed"):
            paused.execute(select(1))  # A's session is gone: nothing of its write can commit
        paused.invalidate()
    finally:
        store_a.engine.dispose()
        store_b.engine.dispose()


def test_a_connection_through_a_cut_network_fails_within_the_connect_timeout(
    postgres_server: PostgresServer | PostgresUnavailableError,
) -> None:
    """A partitioned replica's new connection (its pool's were in use, or dropped) gets no answer at all: without
    libpq's connect_timeout it waits for ever (the daemon's thread with it); with it, a StoreError names the cause."""
    if isinstance(postgres_server, PostgresUnavailableError):
        pytest.skip(f"PostgreSQL unavailable: {postgres_server}")
    url = postgres_server.database()
    with BlackHoleProxy("127.0.0.1", postgres_server.port) as proxy:
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"opening and migrating the database failed.*timeout"):
            Store(url.replace(f":{postgres_server.port}/", f":{proxy.port}/"))
        assert time.monotonic() - started < CONNECT_TIMEOUT_SECONDS + 10
