"""Identity sessions, subjects and the subject's consent link (API.md)."""

from __future__ import annotations

from flask import current_app, jsonify, request, url_for

from .. import identity
from ..consent import notice, service
from ..consent.views import passcode_limit
from ..errors import InvalidInput, NotFound
from ..extensions import db, limiter
from ..models import IdentityCheck, Subject
from ..ownership import get_owned_or_404
from ..portal import service as portal
from ..studio import delivery
from . import bp
from .auth import api_user, token_required
from .routes import _json_body


def _kyc_limit() -> str:
    return str(current_app.config["RATELIMIT_KYC"])


@bp.post("/identity/sessions")
@limiter.limit(_kyc_limit)
@token_required
def start_identity():
    body = _json_body(empty_ok=True, provider=str)
    started = identity.start(api_user(), requested=body.get("provider"))
    return jsonify(id=started.check.id, status=started.check.status, url=started.url), 201


@bp.get("/identity/sessions/<check_id>")
@token_required
def get_identity(check_id: str):
    check = db.session.get(IdentityCheck, check_id)
    if check is None or check.user_id != api_user().id:
        raise NotFound(f"No identity session {check_id}.")
    check = identity.PROVIDERS[check.provider].refresh(check)
    return jsonify(id=check.id, status=check.status, reasons=check.reasons)


@bp.post("/subjects")
@token_required
def create_subject():
    body = _json_body("display_name", "relation", contact_email=str)
    subject, token = service.create_subject(
        api_user(), body["display_name"], body["relation"], body.get("contact_email")
    )
    url = url_for("consent.consent_page", token=token, _external=True)
    return jsonify(id=subject.id, consent_url=url, consent_token=token), 201


@bp.get("/consent/<token>")
@limiter.shared_limit(passcode_limit, scope="consent-passcode")
def get_consent(token: str):
    """The notice, the statement and a fresh passcode with its timed challenge: record from
    the first cue's clock zero, say each digit at its ``at_s`` and turn the head at the
    turn cue (your own left or right), then read the statement."""
    attempt = service.issue_passcode(service.record_for(token))
    return jsonify(
        notice=notice.TEXT,
        notice_version=notice.VERSION,
        notice_sha256=notice.SHA256,
        statement=attempt.statement,
        passcode=attempt.passcode,
        expires_at=attempt.expires_at.isoformat(),
        challenge=attempt.challenge,
    )


@bp.post("/consent/<token>/recording")
@limiter.limit(passcode_limit)
def post_recording(token: str):
    """The recording of the challenge and statement, from the page or a capture app: the
    server decides liveness from its content, whatever sent it."""
    record = service.record_for(token)
    file = request.files.get("video")
    if file is None or not file.filename:
        raise InvalidInput(
            "Attach the statement recording as multipart field 'video'.", code="missing_file"
        )
    record = service.submit_recording(record, file.stream, file.filename)
    return jsonify(status=record.status, reasons=record.reasons)


@bp.post("/consent/<token>/revoke")
def revoke(token: str):
    receipt = service.revoke(service.record_for(token))
    return jsonify(status="revoked", receipt=receipt)


@bp.get("/subjects/<subject_id>")
@token_required
def get_subject(subject_id: str):
    subject = get_owned_or_404(Subject, subject_id, api_user().id)
    return jsonify(
        id=subject.id,
        display_name=subject.display_name,
        status=subject.status,
        contact_email=subject.contact_email,
    )


@bp.patch("/subjects/<subject_id>")
@token_required
def update_subject(subject_id: str):
    """Set (or with null remove) the person's own address, where their portal codes go."""
    body = _json_body(contact_email=str)
    if "contact_email" not in body:
        raise InvalidInput("Send contact_email (an address, or null).", code="missing_fields")
    subject = service.set_contact(
        get_owned_or_404(Subject, subject_id, api_user().id), body["contact_email"]
    )
    return jsonify(id=subject.id, contact_email=subject.contact_email)


@bp.get("/subjects/<subject_id>/renders")
@token_required
def subject_renders(subject_id: str):
    """Every render made with this person's likeness, across all of their avatars: what
    the person sees in their portal, with a signed download link for ready ones."""
    subject = get_owned_or_404(Subject, subject_id, api_user().id)
    renders = []
    for use in portal.uses(subject):
        item = use.as_json()
        if use.downloadable:
            item["download_url"] = url_for(
                "api.download_render",
                render_id=use.id,
                t=delivery.link_token_for(use.id, use.content_id),
                _external=True,
            )
        renders.append(item)
    return jsonify(subject_id=subject.id, renders=renders)
