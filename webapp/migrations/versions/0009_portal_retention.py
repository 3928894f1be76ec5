"""the depicted person's portal and the retention schedule (R21, R24)

Subjects gain an optional contact address (where the portal's one-time codes go);
portal codes and portal sessions get their tables; every kind of stored file gains the
moment retention deleted it (the row stays, as the record of what existed).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PURGED = (
    ("uploads", "purged_at"),
    ("renders", "purged_at"),
    ("avatars", "model_purged_at"),
    ("reports", "attachment_purged_at"),
)


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _subject() -> sa.Column:
    return sa.Column(
        "subject_id",
        sa.String(32),
        sa.ForeignKey("subjects.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def upgrade() -> None:
    with op.batch_alter_table("subjects") as batch:
        batch.add_column(sa.Column("contact_email", sa.String(254), nullable=True))
    for table, column in PURGED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(_when(column))
    op.create_table(
        "portal_codes",
        sa.Column("id", sa.String(32), primary_key=True),
        _subject(),
        sa.Column("consent_record_id", sa.String(32), nullable=False),
        sa.Column("code_mac", sa.String(64), nullable=False),
        sa.Column("sent_to", sa.String(254), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("used_at"),
    )
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        _subject(),
        sa.Column("consent_record_id", sa.String(32), nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("ended_at"),
    )


def downgrade() -> None:
    op.drop_table("portal_sessions")
    op.drop_table("portal_codes")
    for table, column in reversed(PURGED):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
    with op.batch_alter_table("subjects") as batch:
        batch.drop_column("contact_email")
