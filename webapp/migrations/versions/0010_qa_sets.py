"""Q&A avatars: sets, items, deployments on avatars, their clips and conversation logs

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02 00:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.String(32), primary_key=True)


def _owner() -> sa.Column:
    return sa.Column(
        "owner_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )


def _created() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def _status(name: str, values: tuple[str, ...]) -> tuple[sa.Column, sa.CheckConstraint]:
    column = sa.Column("status", sa.String(16), nullable=False)
    check = sa.CheckConstraint(f"status IN ({', '.join(repr(v) for v in values)})", name=name)
    return column, check


def upgrade() -> None:
    op.create_table(
        "qa_sets",
        _id(),
        _owner(),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("fallback", sa.JSON(), nullable=False),
        *_status("ck_qa_sets_status", ("draft", "rendering", "live")),
        sa.Column("version", sa.Integer(), nullable=False),
        _created(),
    )
    op.create_index("ix_qa_sets_owner_id", "qa_sets", ["owner_id"])
    op.create_table(
        "qa_items",
        _id(),
        _owner(),
        sa.Column(
            "set_id",
            sa.String(32),
            sa.ForeignKey("qa_sets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(2), nullable=False),
        sa.Column("questions", sa.JSON(), nullable=False),
        _created(),
    )
    op.create_index("ix_qa_items_owner_id", "qa_items", ["owner_id"])
    op.create_index("ix_qa_items_set_id", "qa_items", ["set_id"])
    op.create_table(
        "qa_deployments",
        _id(),
        _owner(),
        sa.Column(
            "set_id",
            sa.String(32),
            sa.ForeignKey("qa_sets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "avatar_id",
            sa.String(32),
            sa.ForeignKey("avatars.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("slug", sa.String(32), nullable=False),
        sa.Column("origins", sa.JSON(), nullable=False),
        *_status("ck_qa_deployments_status", ("rendering", "live", "stopped")),
        _created(),
        sa.Column("live_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("slug"),
        sa.UniqueConstraint("set_id", "avatar_id", name="uq_qa_deployments_set_avatar"),
    )
    for column in ("owner_id", "set_id", "avatar_id"):
        op.create_index(f"ix_qa_deployments_{column}", "qa_deployments", [column])
    op.create_table(
        "qa_clips",
        _id(),
        sa.Column(
            "deployment_id",
            sa.String(32),
            sa.ForeignKey("qa_deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column(
            "render_id",
            sa.String(32),
            sa.ForeignKey("renders.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        _created(),
        sa.UniqueConstraint("deployment_id", "key", name="uq_qa_clips_key"),
    )
    op.create_index("ix_qa_clips_deployment_id", "qa_clips", ["deployment_id"])
    op.create_table(
        "qa_logs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "deployment_id",
            sa.String(32),
            sa.ForeignKey("qa_deployments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("conversation", sa.String(32), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("item_id", sa.String(32), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("lang", sa.String(2), nullable=False),
        sa.Column("spoken", sa.Boolean(), nullable=False),
        _created(),
    )
    op.create_index("ix_qa_logs_deployment_id", "qa_logs", ["deployment_id"])
    op.create_index("ix_qa_logs_conversation", "qa_logs", ["conversation"])


def downgrade() -> None:
    op.drop_table("qa_logs")
    op.drop_table("qa_clips")
    op.drop_table("qa_deployments")
    op.drop_table("qa_items")
    op.drop_table("qa_sets")
