from __future__ import annotations

from flask import flash, jsonify, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import identity
from ..errors import DomainError, NotFound
from ..extensions import db
from ..models import Avatar, IdentityCheck, Job
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
def home():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    return render_template("home.html")


@bp.get("/dashboard")
@login_required
def index():
    avatars = db.session.scalars(
        select(Avatar).where(Avatar.owner_id == current_user.id).order_by(Avatar.created_at.desc())
    )
    return render_template("dashboard/index.html", avatars=list(avatars), jobs=_jobs())


@bp.get("/dashboard/jobs.json")
@login_required
def jobs_json():
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


@bp.post("/dashboard/identity")
@login_required
def start_identity():
    """Start KYC; a provider with its own pages (Stripe Identity) gets the person next."""
    try:
        started = identity.start(current_user)
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect(url_for("dashboard.index"))
    if started.url:
        return redirect(started.url)
    return redirect(url_for("dashboard.identity_return", check_id=started.check.id))


@bp.get("/dashboard/identity/<check_id>")
@login_required
def identity_return(check_id: str):
    """Where the provider sends the person back: the check as the provider now sees it."""
    check = db.session.get(IdentityCheck, check_id)
    if check is None or check.user_id != current_user.id:
        raise NotFound(f"No identity check {check_id}.")
    check = identity.PROVIDERS[check.provider].refresh(check)
    return render_template("dashboard/identity.html", check=check)
