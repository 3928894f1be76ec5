"""reports, takedowns and sanctions (R20, R21)

Reports gain what they resolve to, a secret status link, a category and priority, and
the moderator's decision; renders can be taken down; accounts carry a sanction step.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 00:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

CATEGORIES = ("not_me", "fraud", "harmful", "other", "appeal")
SANCTIONS = ("none", "warning", "restricted", "suspended", "closed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("status_token_sha256", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("category", sa.String(16), nullable=False, server_default="other")
        )
        batch.add_column(
            sa.Column("source", sa.String(16), nullable=False, server_default="public")
        )
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("link", sa.String(500), nullable=True))
        for column in ("render_id", "avatar_id", "subject_id", "owner_id"):
            batch.add_column(sa.Column(column, sa.String(32), nullable=True))
            batch.create_index(f"ix_reports_{column}", [column])
        batch.add_column(sa.Column("verification", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("attachment_blob_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(32), nullable=True))
        batch.add_column(sa.Column("decision_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("decided_by", sa.String(32), nullable=True))
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint("uq_reports_status_token_sha256", ["status_token_sha256"])
        batch.create_check_constraint("ck_reports_category", _in("category", CATEGORIES))
    with op.batch_alter_table("renders") as batch:
        batch.add_column(sa.Column("taken_down_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("sanction", sa.String(16), nullable=False, server_default="none")
        )
        batch.add_column(sa.Column("sanction_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sanctioned_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint("ck_users_sanction", _in("sanction", SANCTIONS))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_sanction", type_="check")
        for column in ("sanctioned_at", "sanction_reason", "sanction"):
            batch.drop_column(column)
    with op.batch_alter_table("renders") as batch:
        batch.drop_column("taken_down_at")
    with op.batch_alter_table("reports") as batch:
        batch.drop_constraint("ck_reports_category", type_="check")
        batch.drop_constraint("uq_reports_status_token_sha256", type_="unique")
        for column in ("render_id", "avatar_id", "subject_id", "owner_id"):
            batch.drop_index(f"ix_reports_{column}")
        for column in (
            "decided_at",
            "decided_by",
            "decision_note",
            "outcome",
            "attachment_blob_id",
            "verification",
            "render_id",
            "avatar_id",
            "subject_id",
            "owner_id",
            "link",
            "priority",
            "source",
            "category",
            "status_token_sha256",
        ):
            batch.drop_column(column)
