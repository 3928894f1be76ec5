"""API account routes: token list and revoke, password change, password reset by mail."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify

from .. import accounts, ratelimits
from ..models import ApiToken
from . import bp
from .auth import api_token_id, api_user, token_required
from .routes import _json_body


def _token_json(row: ApiToken, current: str) -> dict[str, Any]:
    def iso(moment: Any) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": row.id,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "last_used_at": iso(row.last_used_at),
        "current": row.id == current,
    }


@bp.get("/auth/tokens")
@token_required
def list_tokens():
    """Your live API tokens (never their values); ``current`` marks this request's."""
    current = api_token_id()
    return jsonify(tokens=[_token_json(t, current) for t in accounts.live_tokens(api_user())])


@bp.delete("/auth/tokens/<token_id>")
@token_required
def revoke_token(token_id: str):
    """Revoke one of your tokens at once (this request's own too)."""
    accounts.revoke_token(api_user(), token_id)
    return "", 204


@bp.post("/auth/password")
@token_required
@ratelimits.password_change
def change_password():
    """Change your password; every other token and every browser session ends."""
    body = _json_body("current_password", "new_password")
    accounts.change_password(
        api_user(), body["current_password"], body["new_password"], keep_token=api_token_id()
    )
    return jsonify(status="changed")


@bp.post("/auth/password-reset")
@ratelimits.reset_request
def request_password_reset():
    """Mail a single-use reset link if the email has an account (same answer if not)."""
    email = _json_body("email")["email"]
    accounts.request_password_reset(email)
    minutes = current_app.config["PASSWORD_RESET_TTL_MINUTES"]
    message = (
        f"If {email} has an account, we sent it a link to choose a new password. "
        f"It works once, for {minutes} minutes."
    )
    return jsonify(status="sent", message=message), 202


@bp.post("/auth/password-reset/confirm")
@ratelimits.reset_confirm
def confirm_password_reset():
    """Set a new password with the emailed link's token; every session and token ends."""
    body = _json_body("token", "password")
    accounts.reset_password(body["token"], body["password"])
    return jsonify(status="changed")
