"""A database that stops answering never stalls the daemon's stop past its deadline.

During a network partition a query on an open PostgreSQL connection hangs (no error comes: the packets vanish), and
a locked SQLite file makes a write wait for the whole busy timeout. The daemon's main loop used to retry the lease
release on its own thread every few seconds (even when no release had failed), and a reload read the stored book
there: while either hung, SIGTERM and SIGHUP were not acted on. Now the main loop never touches the database, what
must (a retried release, the reload's book check) runs on one background thread, and every step of the stop path
(the API, the running cycle, the leadership's release, that background task) is bounded by
`shutdown_timeout_seconds`, logging what it abandoned.

Real components: a real daemon process, a real PostgreSQL reached through a TCP proxy that black-holes the
connection (tests/helpers/tcp_proxy.py, as tests/reliability/test_replicas.py partitions a leader), a real SQLite
file write-locked by another connection, real signals.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, make_url
from structlog.testing import capture_logs

from aggregator.interfaces.daemon import RETRY_RELEASE_SECONDS, STOP_GRACE_SECONDS
from aggregator.service import Service
from aggregator.settings import load_settings
from aggregator.store import Store
from tests.conftest import free_port
from tests.helpers.daemon import Daemon
from tests.helpers.faults import ALLOW_LEASE_RELEASE, allow_lease_release, refuse_lease_release
from tests.helpers.postgres import PostgresServer, PostgresUnavailableError
from tests.helpers.tcp_proxy import BlackHoleProxy

SHUTDOWN = 3.0  # schedule.shutdown_timeout_seconds of the daemons here
SLACK = 10.0  # a loaded 2-core machine: process start-up of the signal handling, scheduling delays
PROMPT = 10.0  # `daemon_stopping` within this of SIGTERM (the main loop wakes every 0.2 s)
QUIET = {
    "AGGREGATOR_SCHEDULE__REBALANCE_ON_START": "false",
    "AGGREGATOR_SCHEDULE__RATES_EVERY_MINUTES": "600",
    "AGGREGATOR_SCHEDULE__SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN),
    "AGGREGATOR_LOGGING__FORMAT": "json",
}


@pytest.fixture
def pg_url(postgres_server: PostgresServer | PostgresUnavailableError) -> str:
    if isinstance(postgres_server, PostgresUnavailableError):
        pytest.skip(f"PostgreSQL unavailable: {postgres_server}")
    return postgres_server.database()


@contextmanager
def daemon(config: Path, env: dict[str, str]) -> Iterator[Daemon]:
    d = Daemon(config, {"AGGREGATOR_API__PORT": str(free_port()), **QUIET, **env})
    try:
        d.wait_for("daemon_started", timeout=90)
        yield d
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
        d.proc.wait()
        if d.proc.stdout is not None:
            d.proc.stdout.close()


def stop_within_deadline(d: Daemon) -> dict[str, float]:
    """SIGTERM; assert `daemon_stopping` comes promptly and the process exits 0 within the shutdown deadline (plus
    the leadership's grace and the machine's slack). Returns the measured times."""
    start, sent = len(d.events), time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    d.wait_match("daemon_stopping", start=start, timeout=PROMPT, signal="SIGTERM")
    stopping = time.monotonic() - sent
    code = d.proc.wait(timeout=SHUTDOWN + STOP_GRACE_SECONDS + SLACK)
    exited = time.monotonic() - sent
    assert code == 0
    assert exited <= SHUTDOWN + STOP_GRACE_SECONDS + SLACK, f"exited {exited:.1f}s after SIGTERM"
    d.wait_for("daemon_stopped", timeout=10)  # the reader thread has read the last line
    return {"stopping": stopping, "exited": exited}


def proxied(pg_url: str, proxy: BlackHoleProxy) -> str:
    return make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)


def server_of(pg_url: str) -> tuple[str, int]:
    url = make_url(pg_url)
    assert url.host is not None and url.port is not None
    return url.host, url.port


@pytest.mark.parametrize("during", ["idle", "reload"])
def test_sigterm_during_a_partition_is_acted_on_at_once(
    demo_config: Callable[..., Path], pg_url: str, during: str
) -> None:
    """The database is black-holed while the daemon idles (past one release-retry period: the old main loop then
    hung on the retry's query), or just before a SIGHUP (the old reload then hung reading the stored book). SIGTERM
    is acted on at once and the process exits within the deadline; a reload's book check still waiting on the
    database is logged as abandoned."""
    with (
        BlackHoleProxy(*server_of(pg_url)) as proxy,
        daemon(demo_config(), {"AGGREGATOR_DATABASE__URL": proxied(pg_url, proxy)}) as d,
    ):
        proxy.cut()
        if during == "reload":
            d.proc.send_signal(signal.SIGHUP)
            d.wait_for("config_reloaded", timeout=60)
        else:  # let the release-retry period pass, so that the old main loop would be stuck in it
            time.sleep(RETRY_RELEASE_SECONDS * 2)
        stop_within_deadline(d)
        abandoned = [e for e in d.events if e["event"] == "database_task_abandoned"]
        if during == "reload":
            assert len(abandoned) == 1 and "stored book" in abandoned[0]["task"], abandoned
        else:
            assert abandoned == []  # nothing had failed: nothing touched the database


def test_a_partitioned_leader_exits_within_the_deadline_and_says_it_abandoned_its_release(
    demo_config: Callable[..., Path], pg_url: str
) -> None:
    """A replica leads (a long lease, so it still leads when stopped); its database is black-holed right after its
    election, then SIGHUP (acted on although the first leadership tick may still hang: it runs on the leadership
    thread) and SIGTERM: the release of its leader lease hangs, is abandoned after the deadline
    (`leadership_resign_abandoned`), and the process exits; the lease then expires on its own."""
    env = {
        "AGGREGATOR_COORDINATION__REPLICA_ID": "a",
        "AGGREGATOR_COORDINATION__LEADER_LEASE_SECONDS": "120",
    }
    with (
        BlackHoleProxy(*server_of(pg_url)) as proxy,
        daemon(demo_config(), {"AGGREGATOR_DATABASE__URL": proxied(pg_url, proxy), **env}) as d,
    ):
        d.wait_for("leader_elected", timeout=30)
        proxy.cut()  # often while the first leadership tick still reads the leader row (it then hangs)
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for("config_reloaded", timeout=60)
        stop_within_deadline(d)
        _, abandoned = d.wait_match("leadership_resign_abandoned", timeout=1)
        assert abandoned["replica"] == "a" and abandoned["expires_after_seconds"] == 120
        assert "did not answer" in abandoned["reason"]


@contextmanager
def write_locked(db: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holds the SQLite file's write lock (BEGIN IMMEDIATE) until the block ends."""
    with closing(sqlite3.connect(db, isolation_level=None, timeout=60)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK")


def test_a_release_retry_waiting_on_a_locked_sqlite_file_does_not_hold_up_sigterm(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The cycle's lease release fails (the database refuses the delete, as on a full disk), so the daemon retries
    it every few seconds. The file is then write-locked by another process's connection and the busy timeout is
    long (120 s): the retry waits on the lock. SIGTERM is still acted on at once, and the waiting retry is logged as
    abandoned at the deadline."""
    db = tmp_path / "locked.sqlite"
    Store(f"sqlite:///{db}").engine.dispose()  # the schema, for the trigger
    refuse_lease_release(db)
    env = {
        "AGGREGATOR_DATABASE__URL": f"sqlite:///{db}",
        "AGGREGATOR_DATABASE__BUSY_TIMEOUT_SECONDS": "120",
        "AGGREGATOR_SCHEDULE__REBALANCE_ON_START": "true",
    }
    with daemon(demo_config(), env) as d:
        _, failed = d.wait_match("lease_release_failed", timeout=120)
        assert "disk is full" in failed["error"]
        with write_locked(db) as lock:
            lock.execute(ALLOW_LEASE_RELEASE)  # seen by the daemon only once this transaction commits
            time.sleep(
                RETRY_RELEASE_SECONDS * 2
            )  # the retry is due, reads the lease and waits for the write lock
            stop_within_deadline(d)
        _, abandoned = d.wait_match("database_task_abandoned", timeout=1)
        assert "lease release" in abandoned["task"], abandoned


def test_retry_release_does_not_touch_the_store_unless_a_release_failed(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """No release failed: the retry runs no statement at all. After one failed (the database refused the delete),
    it has work; once it succeeded, it is quiet again."""
    db = tmp_path / "quiet.sqlite"
    settings = load_settings(
        demo_config(lambda t: t.replace("sqlite:///../var/demo.sqlite", f"sqlite:///{db}"))
    )
    svc = Service(settings)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(svc.store.engine, "before_cursor_execute", seen)
    svc.retry_release()
    assert statements == [] and not svc.release_pending

    refuse_lease_release(db)
    with capture_logs() as logs:
        svc.rebalance("cli")
    assert any(e["event"] == "lease_release_failed" for e in logs)
    assert svc.release_pending
    svc.retry_release()  # the fault is still there: still pending
    assert svc.release_pending
    allow_lease_release(db)
    with capture_logs() as logs:
        svc.retry_release()
    assert [e["event"] for e in logs] == ["lease_released"] and not svc.release_pending
    statements.clear()
    svc.retry_release()
    assert statements == []
    svc.store.engine.dispose()
