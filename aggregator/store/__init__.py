"""Persistence: SQLite by default (WAL), any SQLAlchemy URL (PostgreSQL works too). Migrations run at start-up.

Every collection is written in one transaction: a crash leaves the store as it was before it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, insert, select

from aggregator.rates import RateBook
from aggregator.store.schema import collections, rates, rejections

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
Component = tuple[str, str]


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; CLI and daemon share the file
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def open_engine(url: str) -> Engine:
    """An engine on `url`, migrated to the latest schema."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return engine


class Store:
    """Rate history (and, as the schema grows, proposals and the book)."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)

    def record_rates(self, book: RateBook, trigger: str) -> int:
        """Write one collection with its rates and rejections, atomically; returns its id."""
        with self.engine.begin() as conn:
            key = conn.execute(
                insert(collections).values(
                    fetched_at=_naive_utc(book.fetched_at),
                    trigger=trigger,
                    failed_sources=json.dumps(book.failed_sources, sort_keys=True),
                )
            ).inserted_primary_key
            assert key is not None
            cid = key[0]
            if book.rates:
                conn.execute(
                    insert(rates),
                    [
                        {
                            "collection_id": cid,
                            "venue": r.venue,
                            "component": r.component,
                            "value": r.value,
                            "sources": ",".join(r.sources),
                            "observed_at": _naive_utc(r.observed_at),
                            "spread": r.spread,
                        }
                        for r in book.rates
                    ],
                )
            if book.rejected:
                conn.execute(
                    insert(rejections),
                    [
                        {
                            "collection_id": cid,
                            "source": j.source,
                            "key": j.key,
                            "value": j.value,
                            "reason": j.reason,
                        }
                        for j in book.rejected
                    ],
                )
            return int(cid)

    def latest_values(self) -> dict[Component, float]:
        """Each component's most recent stored yield (from the latest collection that had one)."""
        out: dict[Component, float] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rates.c.venue, rates.c.component, rates.c.value).order_by(rates.c.collection_id)
            )
            for venue, component, value in rows:
                out[(venue, component)] = float(value)
        return out

    def history(self, since: datetime) -> dict[Component, list[tuple[datetime, float]]]:
        """Stored yields per component collected at or after `since`, oldest first."""
        out: dict[Component, list[tuple[datetime, float]]] = defaultdict(list)
        query = (
            select(rates.c.venue, rates.c.component, collections.c.fetched_at, rates.c.value)
            .join(collections, rates.c.collection_id == collections.c.id)
            .where(collections.c.fetched_at >= _naive_utc(since))
            .order_by(collections.c.fetched_at, collections.c.id)
        )
        with self.engine.connect() as conn:
            for venue, component, fetched, value in conn.execute(query):
                out[(venue, component)].append((_aware(fetched), float(value)))
        return dict(out)

    def collection_count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(collections.c.id)).all())
