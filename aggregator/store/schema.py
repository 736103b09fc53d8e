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
