"""typed states: CHECK constraints on every status column; avatar freeze columns

Each status column keeps its VARCHAR(16) and gains a CHECK listing the values of its
StrEnum in ``webapp.models`` (the truth); a value outside the lifecycle is refused by the
database itself. A freeze becomes two columns instead of a status, so unfreezing returns
an avatar to the state it was in.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# table, column, allowed values (as of this revision: later changes need their own)
STATES = [
    ("users", "kyc_status", ("unverified", "pending", "verified", "rejected", "needs_review")),
    ("subjects", "status", ("pending", "active", "revoked")),
    (
        "identity_checks",
        "status",
        ("unverified", "pending", "verified", "rejected", "needs_review"),
    ),
    ("consent_records", "status", ("pending", "verified", "rejected", "needs_review", "revoked")),
    ("avatars", "status", ("draft", "training", "ready", "failed", "revoked")),
    ("uploads", "status", ("stored", "valid", "invalid")),
    ("jobs", "status", ("queued", "started", "retrying", "finished", "failed", "canceled")),
    (
        "renders",
        "status",
        ("queued", "rendering", "ready", "failed", "quarantined", "canceled", "taken_down"),
    ),
    ("orders", "status", ("open", "pending", "paid", "failed", "expired", "refunded")),
    ("reports", "status", ("open", "decided")),
]


def _name(table: str, column: str) -> str:
    return f"ck_{table}_{column}"


def upgrade() -> None:
    with op.batch_alter_table("avatars") as batch:
        batch.add_column(sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("frozen_reason", sa.Text(), nullable=True))
    for table, column, values in STATES:
        allowed = ", ".join(f"'{v}'" for v in values)
        with op.batch_alter_table(table) as batch:
            batch.create_check_constraint(_name(table, column), f"{column} IN ({allowed})")


def downgrade() -> None:
    for table, column, _ in reversed(STATES):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_name(table, column), type_="check")
    with op.batch_alter_table("avatars") as batch:
        batch.drop_column("frozen_reason")
        batch.drop_column("frozen_at")
