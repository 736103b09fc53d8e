"""Fencing: every acquisition of a lease takes the next epoch of its name, kept in `lease_epochs` so that a lease
deleted on release and taken again never reuses one. A cycle's write checks its epoch in the same transaction.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lease_epochs",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("epoch", sa.Integer, nullable=False),
    )
    with op.batch_alter_table("leases") as batch:
        batch.add_column(sa.Column("epoch", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("epoch")
    op.drop_table("lease_epochs")
