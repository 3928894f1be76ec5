"""Admin pages: only ``User.is_admin`` (403 for anyone else)."""

from __future__ import annotations

from flask import flash, make_response, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from ..errors import DomainError, Forbidden
from ..extensions import db, login_manager
from ..models import ProtectedPerson
from ..reports import moderation
from . import bp, service
from .forms import (
    REPORT_ACTIONS,
    SANCTION_STEPS,
    DeleteForm,
    ProtectedPersonForm,
    ReportActionForm,
    ReviewForm,
)


@bp.before_request
def _admins_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        raise Forbidden("This page is for administrators only.", code="admin_only")
    return None


def _identity_page(form: ReviewForm, status: int = 200):
    return render_template("admin/identity.html", items=service.review_queue(), form=form), status


@bp.get("/identity")
def identity_queue():
    return _identity_page(ReviewForm())


@bp.post("/identity/<check_id>")
def identity_decide(check_id: str):
    form = ReviewForm()
    if not form.validate_on_submit() or not (form.approve.data or form.reject.data):
        flash(" ".join(form.reason.errors) or "Choose Approve or Reject.", "error")
        return _identity_page(form, 422)
    check = service.review(check_id, current_user, bool(form.approve.data), form.reason.data or "")
    flash(f"Identity check {check.id[:8]} {check.status}.", "ok")
    return redirect(url_for(".identity_queue"))


def _consent_page(form: ReviewForm, status: int = 200):
    return render_template("admin/consent.html", items=service.consent_queue(), form=form), status


@bp.get("/consent")
def consent_queue():
    return _consent_page(ReviewForm())


@bp.post("/consent/<record_id>")
def consent_decide(record_id: str):
    form = ReviewForm()
    if not form.validate_on_submit() or not (form.approve.data or form.reject.data):
        flash(" ".join(form.reason.errors) or "Choose Approve or Reject.", "error")
        return _consent_page(form, 422)
    record = service.review_consent(
        record_id, current_user, bool(form.approve.data), form.reason.data or ""
    )
    flash(f"Consent {record.id[:8]} {record.status}.", "ok")
    return redirect(url_for(".consent_queue"))


@bp.get("/identity/images/<upload_id>")
def identity_image(upload_id: str):
    data, mimetype = service.kyc_image(upload_id)
    response = make_response(data)
    response.mimetype = mimetype
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _protected_page(form: ProtectedPersonForm, status: int = 200):
    people = db.session.scalars(select(ProtectedPerson).order_by(ProtectedPerson.name))
    return render_template(
        "admin/protected.html", people=list(people), form=form, delete=DeleteForm()
    ), status


@bp.route("/protected", methods=["GET", "POST"])
def protected():
    form = ProtectedPersonForm()
    if not form.validate_on_submit():
        return _protected_page(form, 422 if form.errors else 200)
    face, voice = (f.data.read() if f.data else None for f in (form.face, form.voice))
    try:
        person = service.add_protected(form.name.data or "", face, voice, current_user)
    except DomainError as exc:
        form.form_errors.append(exc.message)
        return _protected_page(form, exc.status)
    flash(f"{person.name} is now protected: matching consent recordings go to review.", "ok")
    return redirect(url_for(".protected"))


@bp.post("/protected/<person_id>/delete")
def protected_delete(person_id: str):
    if DeleteForm().validate_on_submit():
        service.remove_protected(person_id, current_user)
        flash("Removed from the protected gallery.", "ok")
    return redirect(url_for(".protected"))


def _reports_page(form: ReportActionForm, status: int = 200):
    page = render_template(
        "admin/reports.html",
        items=moderation.queue(),
        form=form,
        actions=REPORT_ACTIONS,
        steps=SANCTION_STEPS,
    )
    return page, status


@bp.get("/reports")
def reports_queue():
    return _reports_page(ReportActionForm())


@bp.post("/reports/<report_id>")
def report_act(report_id: str):
    form = ReportActionForm()
    if not form.validate_on_submit():
        flash(" ".join(e for errors in form.errors.values() for e in errors), "error")
        return _reports_page(form, 422)
    try:
        report = moderation.act(
            report_id,
            current_user,
            form.action.data or "",
            form.reason.data or "",
            step=form.step.data or None,
            close=bool(form.close.data),
        )
    except DomainError as exc:
        flash(exc.message, "error")
        return _reports_page(form, exc.status)
    flash(f"Report {report.id[:8]}: {form.action.data} done ({report.status}).", "ok")
    return redirect(url_for(".reports_queue"))
