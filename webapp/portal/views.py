"""The portal pages, reached from the person's consent link (``/consent/<token>/portal``).

Every page re-reads the link's consent record and the browser's portal session; a render
is found only among the link subject's own renders (404 otherwise)."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from ..consent import service as consent
from ..errors import Unauthorized
from ..extensions import limiter
from ..models import ConsentRecord, PortalSession, Subject
from ..ownership import get_referenced
from ..studio import delivery
from . import service

bp = Blueprint("portal", __name__, url_prefix="/consent/<token>/portal")
_COOKIE_KEY = "portal"


def portal_limit() -> str:
    return str(current_app.config["RATELIMIT_PORTAL"])


def _granted(token: str) -> tuple[ConsentRecord, PortalSession]:
    record = consent.record_for(token)
    return record, service.grant(record, session.get(_COOKIE_KEY))


def _home(token: str) -> Response:
    return redirect(url_for(".home", token=token))  # type: ignore[return-value]


@bp.get("")
def home(token: str):
    record = consent.record_for(token)
    subject = get_referenced(Subject, record.subject_id)
    try:
        granted = service.grant(record, session.get(_COOKIE_KEY))
    except Unauthorized:
        contact = service.contact_for(subject)
        return render_template(
            "portal/enter.html", token=token, sent_to=service.masked(contact) if contact else None
        )
    uses = service.uses(subject)
    links = {
        u.id: url_for(
            ".download",
            token=token,
            render_id=u.id,
            t=service.download_token(u.id, granted.subject_id),
        )
        for u in uses
        if u.downloadable
    }
    response = Response(
        render_template(
            "portal/home.html", token=token, subject=subject, record=record, uses=uses, links=links
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/code")
@limiter.limit(portal_limit)
def send_code(token: str):
    row = service.send_code(consent.record_for(token))
    flash(
        f"We sent a code to {service.masked(row.sent_to)}. It works once, for "
        f"{current_app.config['PORTAL_CODE_TTL_MINUTES']} minutes."
    )
    return _home(token)


@bp.post("/enter")
@limiter.limit(portal_limit)
def enter(token: str):
    granted = service.enter(consent.record_for(token), request.form.get("code", ""))
    session[_COOKIE_KEY] = granted
    return _home(token)


@bp.get("/renders/<render_id>/file")
def download(token: str, render_id: str):
    _, granted = _granted(token)
    render = service.render_of(granted.subject_id, render_id)
    service.check_download(request.args.get("t", ""), render.id, granted.subject_id)
    chunks = delivery.stream_output(render, actor_id=None, for_subject=True)
    header = f'attachment; filename="dhf-{render.content_id}.mp4"'
    return Response(chunks, mimetype="video/mp4", headers={"Content-Disposition": header})


@bp.post("/renders/<render_id>/flag")
@limiter.limit(portal_limit)
def flag(token: str, render_id: str):
    _, granted = _granted(token)
    report = service.open_flag(
        service.render_of(granted.subject_id, render_id), request.form.get("reason", "")
    )
    flash(
        f"Thank you: report {report.id} is open; our team answers by "
        f"{report.due_by.strftime('%Y-%m-%d %H:%M UTC')}."
    )
    return _home(token)


@bp.post("/withdraw")
def withdraw(token: str):
    record, _ = _granted(token)
    consent.revoke(record)
    flash(
        "You withdrew your consent: nothing new will be made with your likeness, and its "
        "files are destroyed."
    )
    return _home(token)


@bp.post("/leave")
def leave(token: str):
    _, granted = _granted(token)
    service.leave(granted)
    session.pop(_COOKIE_KEY, None)
    return redirect(url_for("consent.consent_page", token=token))
