"""The subject's own consent page: notice, own KYC when they are another person,
statement with passcode, live recording."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    make_response,
    redirect,
    render_template,
    session,
    url_for,
)

from .. import identity
from ..errors import DomainError, InvalidInput
from ..extensions import limiter
from ..identity import self_hosted
from ..models import Subject, User
from ..ownership import get_referenced
from . import notice, service

bp = Blueprint("consent", __name__)
bp.register_blueprint(self_hosted.pages)  # the self-hosted KYC pages, reached by link too


def passcode_limit() -> str:
    return str(current_app.config["RATELIMIT_PASSCODE"])


@bp.get("/consent/<token>")
@limiter.shared_limit(passcode_limit, scope="consent-passcode")  # with GET /api/v1/consent
def consent_page(token: str):
    record = service.record_for(token)
    page = {"token": token, "record": record, "notice": notice}
    if record.status in service.DECIDED:
        return render_template("consent/page.html", **page)
    subject = get_referenced(Subject, record.subject_id)
    if service.needs_own_identity(subject):
        return render_template(
            "consent/page.html",
            needs_identity=True,
            identity_check=service.latest_identity(subject),
            **page,
        )
    try:
        attempt = service.issue_passcode(record)
    except DomainError as exc:
        return render_template("error.html", status=exc.status, code=exc.code, message=exc.message)
    response = make_response(render_template("consent/page.html", attempt=attempt, **page))
    response.headers["Cache-Control"] = "no-store"  # the page shows a one-time code
    return response


@bp.post("/consent/<token>/identity")
@limiter.limit(lambda: str(current_app.config["RATELIMIT_KYC"]))
def start_identity(token: str):
    """The depicted person (not the account holder) starts their own KYC from their link."""
    record = service.record_for(token)
    subject = get_referenced(Subject, record.subject_id)
    if not service.needs_own_identity(subject):
        raise InvalidInput("No identity check is needed here.", code="kyc_not_needed")
    started = identity.start(get_referenced(User, subject.owner_id), subject)
    # the check's page tells the person to reopen their link; the token stays out of cookies
    session["identity_return"] = [started.check.id]
    return redirect(started.url or url_for(".consent_page", token=token))
