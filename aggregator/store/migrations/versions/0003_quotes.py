"""Every accepted quote of a collection, source by source, so any yield can be traced to what each source said.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quotes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "collection_id", sa.Integer, sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("observed_at", sa.DateTime, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_index("ix_quotes_collection_id", "quotes", ["collection_id"])


def downgrade() -> None:
    op.drop_table("quotes")
