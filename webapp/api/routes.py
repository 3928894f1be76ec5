"""API views: parse, validate, call one service, respond."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from .. import accounts, ratelimits, sanctions, webhooks
from ..billing import ledger
from ..errors import InvalidInput
from ..models import Avatar, Job
from ..ownership import get_owned_or_404
from ..studio import service as studio
from . import bp
from .auth import api_user, token_required

_TYPE_NAMES = {str: "a string", int: "a whole number", bool: "true or false"}


def _json_body(*fields: str, empty_ok: bool = False, **optional: type) -> dict[str, Any]:
    """The request's JSON object: ``fields`` are required non-empty strings, ``optional``
    names other fields with their type (absent or null is fine). Anything else is a 422."""
    if empty_ok and not request.get_data(cache=True):
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("Send a JSON object body with Content-Type: application/json.")
    missing = [f for f in fields if not isinstance(body.get(f), str) or not body[f]]
    if missing:
        raise InvalidInput(f"Missing field(s): {', '.join(missing)}.", code="missing_fields")
    for name, kind in optional.items():
        value = body.get(name)
        wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
        if value is not None and wrong:
            raise InvalidInput(
                f"{name} must be {_TYPE_NAMES.get(kind, kind.__name__)}.", code="bad_field"
            )
    return body


@bp.post("/auth/signup")
@ratelimits.signup
def signup():
    """Create an account; the answer is the same when the email already has one."""
    body = _json_body("email", "password")
    _, user_id = accounts.register(body["email"], body["password"])
    return jsonify(user_id=user_id), 201


@bp.post("/auth/tokens")
@ratelimits.login
def create_token():
    """Log in: a bearer token for these credentials (one rate-limit bucket with /login)."""
    body = _json_body("email", "password")
    user = accounts.authenticate(body["email"], body["password"])
    token, expires = accounts.issue_token(user)
    return jsonify(token=token, expires_at=expires.isoformat()), 201


@bp.get("/me")
@token_required
def me():
    user = api_user()
    credits = ledger.balance(user.id)
    return jsonify(
        id=user.id,
        email=user.email,
        kyc_status=user.kyc_status,
        credits=credits,
        sanction=sanctions.status(user),
    )


def _job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "stage": job.stage,
        "result": job.result,
        "error": job.error,
    }


@bp.get("/jobs/<job_id>")
@token_required
def get_job(job_id: str):
    return jsonify(_job_json(get_owned_or_404(Job, job_id, api_user().id)))


@bp.get("/avatars/<avatar_id>")
@token_required
def get_avatar(avatar_id: str):
    avatar = get_owned_or_404(Avatar, avatar_id, api_user().id)
    job = studio.latest_job(avatar.id)
    return jsonify(
        id=avatar.id,
        status=avatar.status,
        progress=job.progress if job else 0.0,
        stage=job.stage if job else avatar.status,
        quality=avatar.quality,
    )


@bp.post("/avatars/<avatar_id>/training-video")
@token_required
def upload_training_video(avatar_id: str):
    avatar = get_owned_or_404(Avatar, avatar_id, api_user().id)
    file = request.files.get("video")
    upload, job = studio.upload_training_video(
        avatar, file.stream if file else None, file.filename if file else ""
    )
    return jsonify(upload_id=upload.id, job_id=job.id, status=upload.status), 202


@bp.put("/webhook")
@token_required
def set_webhook():
    """Send signed notifications to this URL when a training or a render ends."""
    url = _json_body("url")["url"]
    secret = webhooks.configure(api_user(), url)
    return jsonify(url=url, secret=secret)


@bp.delete("/webhook")
@token_required
def delete_webhook():
    """Stop notifications."""
    webhooks.configure(api_user(), None)
    return "", 204
