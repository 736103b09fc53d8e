"""Capital in flight: an applied plan's queued exits, each with its origin, destination, amount and due time. The
`book` table holds settled positions only; the book is settled plus in flight.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "in_flight",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("from_venue", sa.String(128), nullable=False),
        sa.Column("to_venue", sa.String(128), nullable=False),
        sa.Column("amount_eth", sa.Float, nullable=False),
        sa.Column("due_at", sa.DateTime, nullable=False, index=True),
        sa.Column("proposal_id", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("in_flight")
