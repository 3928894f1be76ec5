"""consent binding: timed challenges, reviewed decisions, per-upload identity templates

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 20:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_records") as batch:
        batch.add_column(sa.Column("challenge", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reviewed_by", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("scores", sa.JSON(), nullable=True))
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("template_blob_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("template_blob_id")
    with op.batch_alter_table("consent_records") as batch:
        batch.drop_column("scores")
        batch.drop_column("reviewed_at")
        batch.drop_column("reviewed_by")
        batch.drop_column("challenge")
