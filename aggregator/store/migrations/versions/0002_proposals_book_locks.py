"""Proposals (every plan with its trigger and mode), the allocation book, and leases for the cycle lock.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("moves", sa.Integer, nullable=False),
        sa.Column("turnover", sa.Float, nullable=False),
        sa.Column("yield_before", sa.Float, nullable=False),
        sa.Column("yield_after", sa.Float, nullable=False),
        sa.Column("cvar_before", sa.Float, nullable=False),
        sa.Column("cvar_after", sa.Float, nullable=False),
        sa.Column("gain_bps", sa.Float, nullable=False),
        sa.Column("collection_id", sa.Integer, sa.ForeignKey("collections.id"), nullable=True),
        sa.Column("plan", sa.Text, nullable=False),
    )
    op.create_index("ix_proposals_created_at", "proposals", ["created_at"])
    op.create_table(
        "book",
        sa.Column("venue", sa.String(128), primary_key=True),
        sa.Column("amount_eth", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("proposal_id", sa.String(32), nullable=True),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("book")
    op.drop_table("proposals")
