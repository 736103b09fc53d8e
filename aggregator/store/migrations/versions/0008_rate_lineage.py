"""Each stored rate keeps its source lineage (issue #20): how many independent observations its sources give and,
per observation, the origin and the sources that reported it (`lido-api: defillama, lido`). Rows written before
this migration have neither (NULL: not recorded).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rates") as batch:
        batch.add_column(sa.Column("independent", sa.Integer, nullable=True))
        batch.add_column(sa.Column("lineage", sa.Text, nullable=True))  # JSON list of "origin: source, …"


def downgrade() -> None:
    with op.batch_alter_table("rates") as batch:
        batch.drop_column("lineage")
        batch.drop_column("independent")
