from __future__ import annotations

from flask import jsonify, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from ..extensions import db
from ..models import Avatar, Job
from . import bp


def _jobs(limit: int = 50) -> list[Job]:
    query = (
        select(Job)
        .where(Job.owner_id == current_user.id)
        .order_by(Job.created_at.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


@bp.get("/")
def home():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    return render_template("home.html")


@bp.get("/dashboard")
@login_required
def index():  # type: ignore[no-untyped-def]
    avatars = db.session.scalars(
        select(Avatar).where(Avatar.owner_id == current_user.id).order_by(Avatar.created_at.desc())
    )
    return render_template("dashboard/index.html", avatars=list(avatars), jobs=_jobs())


@bp.get("/dashboard/jobs.json")
@login_required
def jobs_json():  # type: ignore[no-untyped-def]
    return jsonify(
        jobs=[
            {
                "id": j.id,
                "kind": j.kind,
                "status": j.status,
                "progress": j.progress,
                "stage": j.stage,
            }
            for j in _jobs()
        ]
    )
