"""Pages: the public report form, its secret status page, and the sanction appeal form."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import accounts, ratelimits
from ..errors import DomainError
from . import bp, service


class TooLarge(DomainError):
    status, code = 413, "too_large"


def attached_file() -> tuple[Any, str] | None:
    """The multipart ``file`` as (stream, name), refused by its declared size before a
    byte is decoded (the verifier's ``VERIFY_MAX_BYTES``; bodylimit also caps the body)."""
    file = request.files.get("file")
    if file is None or not file.filename:
        return None
    limit = int(current_app.config["VERIFY_MAX_BYTES"])
    if request.content_length and request.content_length > limit:
        raise TooLarge(f"Files up to {limit // (1024 * 1024)} MiB can be attached.")
    return file.stream, file.filename


def report_fields(source: Any) -> dict[str, Any]:
    """The report's text fields from a form or a JSON object."""
    names = ("category", "reason", "contact", "link", "content_id")
    return {name: source.get(name) for name in names}


@bp.route("/report", methods=["GET", "POST"])
@ratelimits.report
def report_page():
    labels = {c.value: service.CATEGORY_LABELS[c] for c in service.PUBLIC_CATEGORIES}
    if request.method == "GET":
        return render_template("public/report.html", labels=labels, form={})
    try:
        opened = service.open_report(**report_fields(request.form), file=attached_file())
    except DomainError as exc:
        page = render_template(
            "public/report.html", labels=labels, form=request.form, error=exc.message
        )
        return page, exc.status
    flash(service.opened_message(opened), "ok")
    return redirect(url_for(".status_page", token=opened.token))


@bp.get("/report/status/<token>")
def status_page(token: str):
    report = service.by_token(token)
    status = service.status_json(report)
    label = service.CATEGORY_LABELS[report.category]
    response = render_template("public/report_status.html", report=status, label=label)
    return response, 200, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@bp.route("/account/appeal", methods=["GET", "POST"])
@ratelimits.report
@ratelimits.login  # anonymous appeals check a password: the login budget counts them too
def appeal_page():
    """Signed in: appeal your account's sanction. A closed account (no login) appeals
    here with its email and password."""
    user = current_user if current_user.is_authenticated else None
    if request.method == "GET":
        return render_template("account/appeal.html", user=user, form={})
    try:
        if user is None:
            email, password = request.form.get("email", ""), request.form.get("password", "")
            user = accounts.credentials(email, password)
        opened = service.open_appeal(user, request.form.get("reason"))
    except DomainError as exc:
        signed_in = current_user if current_user.is_authenticated else None
        page = render_template(
            "account/appeal.html", user=signed_in, form=request.form, error=exc.message
        )
        return page, exc.status
    flash(service.opened_message(opened), "ok")
    return redirect(url_for(".status_page", token=opened.token))
