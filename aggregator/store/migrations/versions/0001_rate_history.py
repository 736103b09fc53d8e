"""Rate history: one row per collection, its component rates and its rejected quotes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fetched_at", sa.DateTime, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("failed_sources", sa.Text, nullable=False),
    )
    op.create_index("ix_collections_fetched_at", "collections", ["fetched_at"])
    op.create_table(
        "rates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("venue", sa.String(128), nullable=False),
        sa.Column("component", sa.String(128), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("observed_at", sa.DateTime, nullable=False),
        sa.Column("spread", sa.Float, nullable=True),
    )
    op.create_index("ix_rates_collection_id", "rates", ["collection_id"])
    op.create_table(
        "rejections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_rejections_collection_id", "rejections", ["collection_id"])


def downgrade() -> None:
    op.drop_table("rejections")
    op.drop_table("rates")
    op.drop_table("collections")
