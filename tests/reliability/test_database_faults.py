"""The store under a database that refuses writes: full, read-only, locked by another writer.

Each fault must give a StoreError that says what failed and why, leave the file exactly as it was (integrity check
passes, no row of the failed cycle anywhere), and the next cycle after the fault clears must record normally.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from aggregator.core.errors import StoreError
from aggregator.service import Service
from aggregator.settings import load_settings
from tests.aggregator.test_cli import run

TABLES = ("collections", "rates", "quotes", "rejections", "proposals", "book", "leases")


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


@contextmanager
def pragma(service: Service, statement: str) -> Iterator[None]:
    """Every new connection of the service's engine runs `statement` until the block ends."""
    engine = service.store.engine

    def apply(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(statement)

    event.listen(engine, "connect", apply)
    engine.dispose()
    try:
        yield
    finally:
        event.remove(engine, "connect", apply)
        engine.dispose()


def page_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(conn.execute("PRAGMA page_count").fetchone()[0])


@pytest.fixture
def service(demo_config: Callable[..., Path], tmp_path: Path) -> tuple[Service, Path]:
    db = tmp_path / "faults.sqlite"
    settings = load_settings(
        demo_config(lambda t: t.replace('url = "sqlite:///../var/demo.sqlite"', f'url = "sqlite:///{db}"'))
    )
    svc = Service(settings)
    svc.rebalance("cli", apply=True)  # one good cycle first: the store has a book and history to protect
    return svc, db


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("full", "database or disk is full (the disk holding the database is full)"),
        ("PRAGMA query_only = 1", "readonly database (the database file or its folder is not writable"),
    ],
)
def test_a_refused_write_leaves_the_store_as_it_was(
    service: tuple[Service, Path], fault: str, message: str
) -> None:
    svc, db = service
    before = counts(db)
    book = svc.store.book()
    statement = f"PRAGMA max_page_count = {page_count(db)}" if fault == "full" else fault
    with pragma(svc, statement), pytest.raises(StoreError) as info:
        svc.rebalance("cli", apply=True)
    assert message in str(info.value) and str(db) in str(info.value)
    assert counts(db) == before | {"leases": 0}  # not one row of the failed cycle; the lease is gone
    assert svc.store.book() == book
    svc.rebalance("cli", apply=True)  # the fault cleared: the next cycle records normally
    after = counts(db)
    assert after["proposals"] == before["proposals"] + 1 and after["collections"] == before["collections"] + 1


def test_a_writer_holding_the_lock_past_the_busy_timeout_fails_the_cycle_cleanly(
    demo_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Another process holds the write lock: the CLI waits `busy_timeout_seconds`, exits 8 naming the cause, and
    writes nothing; once the lock is released the same command succeeds."""
    db = tmp_path / "locked.sqlite"
    config = demo_config()
    env = {"AGGREGATOR_DATABASE__URL": f"sqlite:///{db}", "AGGREGATOR_DATABASE__BUSY_TIMEOUT_SECONDS": "0.5"}
    assert run("rebalance", "--config", str(config), env=env).returncode == 0
    before = counts(db)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        locked = run("rebalance", "--config", str(config), env=env)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.returncode == 8, locked.stderr
    assert "database error:" in locked.stderr and "another process held a write lock" in locked.stderr
    assert counts(db) == before
    assert run("rebalance", "--config", str(config), env=env).returncode == 0
    assert counts(db)["proposals"] == before["proposals"] + 1
