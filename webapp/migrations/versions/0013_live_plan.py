"""Live shows: scheduled starts (their state) and product cards on segments

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("live_rooms") as batch:
        batch.add_column(sa.Column("schedule_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("schedule_note", sa.Text(), nullable=True))
    with op.batch_alter_table("live_segments") as batch:
        batch.add_column(sa.Column("card", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("live_segments") as batch:
        batch.drop_column("card")
    with op.batch_alter_table("live_rooms") as batch:
        batch.drop_column("schedule_note")
        batch.drop_column("schedule_state")
