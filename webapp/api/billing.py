"""Checkout and the Stripe webhook (raw body, signature-verified)."""

from __future__ import annotations

from flask import current_app, jsonify, request

from ..billing import service
from ..extensions import limiter
from . import bp
from .auth import api_user, token_required
from .routes import _json_body


@bp.post("/checkout")
@token_required
def checkout():
    body = _json_body("item", avatar_id=str, quantity=int)
    order, url = service.create_checkout(
        api_user(), body["item"], body.get("avatar_id"), body.get("quantity")
    )
    return jsonify(session_id=order.stripe_session_id, checkout_url=url, order_id=order.id), 201


def _stripe_limit() -> str:
    return str(current_app.config["RATELIMIT_STRIPE_WEBHOOK"])


@bp.post("/stripe/webhook")
@limiter.limit(_stripe_limit)
def stripe_webhook():
    outcome = service.handle_webhook(request.get_data(), request.headers.get("Stripe-Signature"))
    return jsonify(received=True, outcome=outcome)
