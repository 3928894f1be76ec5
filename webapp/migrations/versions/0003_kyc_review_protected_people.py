"""self-hosted KYC review data, KYC images on uploads, protected-person gallery

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 19:57:32.016649
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPLOAD_CHECK_FK = "fk_uploads_identity_check_id_identity_checks"


def upgrade() -> None:
    op.create_table(
        "protected_people",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("face", sa.JSON(), nullable=True),
        sa.Column("voice", sa.JSON(), nullable=True),
        sa.Column("added_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identity_checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("date_of_birth", sa.Date(), nullable=True))
        # existing checks get an empty mapping; the application fills it from now on
        batch_op.add_column(
            sa.Column("scores", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("face_blob_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reviewed_by", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("review_note", sa.Text(), nullable=True))
    with op.batch_alter_table("identity_checks", schema=None) as batch_op:
        batch_op.alter_column("scores", existing_type=sa.JSON(), server_default=None)

    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_check_id", sa.String(length=32), nullable=True))
        batch_op.alter_column("subject_id", existing_type=sa.String(length=32), nullable=True)
        batch_op.create_index(
            batch_op.f("ix_uploads_identity_check_id"), ["identity_check_id"], unique=False
        )
        batch_op.create_foreign_key(
            UPLOAD_CHECK_FK, "identity_checks", ["identity_check_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    # the account holder's own KYC images have no subject: they cannot stay in the old schema
    op.execute("DELETE FROM uploads WHERE subject_id IS NULL")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_constraint(UPLOAD_CHECK_FK, type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_uploads_identity_check_id"))
        batch_op.alter_column("subject_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column("identity_check_id")

    with op.batch_alter_table("identity_checks", schema=None) as batch_op:
        batch_op.drop_column("review_note")
        batch_op.drop_column("reviewed_by")
        batch_op.drop_column("face_blob_id")
        batch_op.drop_column("scores")
        batch_op.drop_column("date_of_birth")

    op.drop_table("protected_people")
