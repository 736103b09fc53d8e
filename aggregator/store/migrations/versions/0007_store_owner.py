"""The config a store belongs to: one row naming the config that created (or adopted) it, so that two configs
never share a book, proposals or rate history by accident (issue #16).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_owner",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("config", sa.String(128), nullable=False),
        sa.Column("claimed_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_owner")
