"""Leases also carry the holder's boot and a monotonic deadline, so a wall-clock jump on this host can neither hand
a live holder's lease to another cycle nor keep a dead holder's lease.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.add_column(sa.Column("boot_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("expires_monotonic", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("expires_monotonic")
        batch.drop_column("boot_id")
