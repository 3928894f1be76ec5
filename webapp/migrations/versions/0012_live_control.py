"""Live show control: operator lines, the room's notice clip, the operator log

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _fk(name: str, target: str, ondelete: str, *, nullable: bool) -> sa.Column:
    return sa.Column(
        name, sa.String(32), sa.ForeignKey(target, ondelete=ondelete), nullable=nullable
    )


def _when(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("live_rooms") as batch_op:
        batch_op.add_column(sa.Column("notice_render_id", sa.String(32), nullable=True))
        batch_op.create_foreign_key(
            "fk_live_rooms_notice_render_id_renders",
            "renders",
            ["notice_render_id"],
            ["id"],
            ondelete="SET NULL",
        )
    statuses = ("rendering", "queued", "aired", "failed")
    op.create_table(
        "live_lines",
        sa.Column("id", sa.String(32), primary_key=True),
        _fk("room_id", "live_rooms.id", "CASCADE", nullable=False),
        sa.Column("operator_id", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _fk("render_id", "renders.id", "SET NULL", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.CheckConstraint(
            f"status IN ({', '.join(repr(v) for v in statuses)})", name="ck_live_lines_status"
        ),
        _when("airs_at"),
        _when("created_at", nullable=False),
        _when("aired_at"),
    )
    op.create_index("ix_live_lines_room_id", "live_lines", ["room_id"])
    op.create_table(
        "live_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _fk("room_id", "live_rooms.id", "CASCADE", nullable=False),
        sa.Column("actor_id", sa.String(32), nullable=True),
        sa.Column("tag", sa.String(40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        _when("created_at", nullable=False),
    )
    op.create_index("ix_live_log_room_id", "live_log", ["room_id"])


def downgrade() -> None:
    op.drop_table("live_log")
    op.drop_table("live_lines")
    with op.batch_alter_table("live_rooms") as batch_op:
        batch_op.drop_constraint("fk_live_rooms_notice_render_id_renders", type_="foreignkey")
        batch_op.drop_column("notice_render_id")
