"""Live shows: rooms, their planned segments and viewers' comments

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 00:11:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _status(name: str, values: tuple[str, ...]) -> tuple[sa.Column, sa.CheckConstraint]:
    column = sa.Column("status", sa.String(16), nullable=False)
    check = sa.CheckConstraint(f"status IN ({', '.join(repr(v) for v in values)})", name=name)
    return column, check


def _fk(name: str, target: str, ondelete: str, *, nullable: bool) -> sa.Column:
    return sa.Column(
        name, sa.String(32), sa.ForeignKey(target, ondelete=ondelete), nullable=nullable
    )


def _when(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "live_rooms",
        sa.Column("id", sa.String(32), primary_key=True),
        _fk("owner_id", "users.id", "CASCADE", nullable=False),
        _fk("avatar_id", "avatars.id", "CASCADE", nullable=False),
        _fk("qa_deployment_id", "qa_deployments.id", "SET NULL", nullable=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("slug", sa.String(32), nullable=False),
        sa.Column("loop", sa.Boolean(), nullable=False),
        sa.Column("idle_script", sa.Text(), nullable=False),
        _fk("idle_render_id", "renders.id", "SET NULL", nullable=True),
        sa.Column("max_seconds", sa.Integer(), nullable=False),
        _when("starts_at"),
        sa.Column("outputs", sa.JSON(), nullable=False),
        *_status("ck_live_rooms_status", ("draft", "rendering", "ready", "live", "ended")),
        sa.Column("started_by", sa.String(32), nullable=True),
        _when("started_at"),
        _when("stop_requested_at"),
        _when("ended_at"),
        sa.Column("stop_reason", sa.String(32), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=False),
        _when("created_at", nullable=False),
        sa.UniqueConstraint("slug"),
    )
    op.create_index("ix_live_rooms_owner_id", "live_rooms", ["owner_id"])
    op.create_index("ix_live_rooms_avatar_id", "live_rooms", ["avatar_id"])
    op.create_table(
        "live_segments",
        sa.Column("id", sa.String(32), primary_key=True),
        _fk("room_id", "live_rooms.id", "CASCADE", nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        _fk("render_id", "renders.id", "SET NULL", nullable=True),
        _when("created_at", nullable=False),
        sa.UniqueConstraint("room_id", "position", name="uq_live_segments_position"),
    )
    op.create_index("ix_live_segments_room_id", "live_segments", ["room_id"])
    op.create_table(
        "live_comments",
        sa.Column("id", sa.String(32), primary_key=True),
        _fk("room_id", "live_rooms.id", "CASCADE", nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("author", sa.String(80), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        *_status("ck_live_comments_status", ("queued", "aired", "unmatched", "rejected")),
        sa.Column("item_id", sa.String(32), nullable=True),
        sa.Column("render_id", sa.String(32), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        _when("created_at", nullable=False),
        _when("aired_at"),
    )
    op.create_index("ix_live_comments_room_id", "live_comments", ["room_id"])


def downgrade() -> None:
    op.drop_table("live_comments")
    op.drop_table("live_segments")
    op.drop_table("live_rooms")
