"""The database schema (SQLAlchemy Core). Changes go through a new migration in `migrations/versions/`."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

collections = Table(
    "collections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fetched_at", DateTime, nullable=False, index=True),  # UTC
    Column("trigger", String(16), nullable=False),
    Column("failed_sources", Text, nullable=False),  # JSON object: source -> reason
)

rates = Table(
    "rates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "collection_id", Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("venue", String(128), nullable=False),
    Column("component", String(128), nullable=False),
    Column("value", Float, nullable=False),  # fraction per year
    Column("sources", Text, nullable=False),  # comma-separated
    Column("observed_at", DateTime, nullable=False),  # UTC
    Column("spread", Float, nullable=True),
    Column("independent", Integer, nullable=True),  # independent observations among the sources (0008)
    Column("lineage", Text, nullable=True),  # JSON list, per observation "origin: source, source" (0008)
)

rejections = Table(
    "rejections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "collection_id", Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("source", String(128), nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Float, nullable=True),
    Column("reason", Text, nullable=False),
)

proposals = Table(
    "proposals",
    metadata,
    Column("id", String(32), primary_key=True),  # the cycle's run_id
    Column("created_at", DateTime, nullable=False, index=True),  # UTC
    Column("trigger", String(16), nullable=False),  # schedule | start | cli | api
    Column("mode", String(16), nullable=False),  # dry_run | applied
    Column("status", String(16), nullable=False),  # rebalance | hold
    Column("reason", Text, nullable=False),
    Column("moves", Integer, nullable=False),
    Column("turnover", Float, nullable=False),
    Column("yield_before", Float, nullable=False),
    Column("yield_after", Float, nullable=False),
    Column("cvar_before", Float, nullable=False),
    Column("cvar_after", Float, nullable=False),
    Column("gain_bps", Float, nullable=False),
    Column("collection_id", Integer, ForeignKey("collections.id"), nullable=True),
    Column("plan", Text, nullable=False),  # the whole Plan as JSON, recorded inputs included
)

book = Table(
    "book",
    metadata,
    Column("venue", String(128), primary_key=True),
    Column("amount_eth", Float, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("proposal_id", String(32), nullable=True),  # the applied proposal that set it
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),  # host:pid:token
    Column("expires_at", DateTime, nullable=False),  # wall clock: what another host can check
    Column("boot_id", String(64), nullable=True),  # the holder's machine boot (Linux boot_id)
    Column("expires_monotonic", Float, nullable=True),  # the holder's monotonic clock: immune to clock jumps
    Column("epoch", Integer, nullable=True),  # the fencing token of this acquisition (see lease_epochs)
)

lease_epochs = Table(
    "lease_epochs",
    metadata,
    Column("name", String(64), primary_key=True),
    Column(
        "epoch", Integer, nullable=False
    ),  # the last epoch handed out for this lease name; only ever grows
)

quotes = Table(
    "quotes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "collection_id", Integer, ForeignKey("collections.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("source", String(128), nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Float, nullable=False),  # fraction per year, as accepted
    Column("observed_at", DateTime, nullable=False),  # UTC
    Column("note", Text, nullable=False),
)

in_flight = Table(
    "in_flight",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("from_venue", String(128), nullable=False),  # still exposed here until due
    Column("to_venue", String(128), nullable=False),
    Column("amount_eth", Float, nullable=False),
    Column("due_at", DateTime, nullable=False, index=True),  # UTC
    Column("proposal_id", String(32), nullable=True),  # the applied proposal that queued it
)

store_owner = Table(
    "store_owner",
    metadata,
    Column("id", Integer, primary_key=True),  # always 1: one owner per store
    Column("config", String(128), nullable=False),  # the identity of the config that created (or adopted) it
    Column("claimed_at", DateTime, nullable=False),  # UTC
)
