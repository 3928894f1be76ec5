"""Checkout gateways behind one small interface, chosen by configuration.

``StripeGateway`` creates real Stripe Checkout Sessions (``STRIPE_API_BASE`` points it at
a local server in tests). ``DevGateway`` is for development without Stripe keys: its
sessions complete on a local test page that sends a locally signed webhook event through
the same fulfilment path. It refuses to exist in production.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import stripe
from flask import current_app, url_for

from ..models import Order, User


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


class CheckoutGateway(Protocol):
    def create_session(self, order: Order, user: User, name: str) -> CheckoutSession: ...

    @property
    def webhook_secret(self) -> str: ...


def _urls() -> tuple[str, str]:
    success = url_for("billing.orders", _external=True) + "?paid={CHECKOUT_SESSION_ID}"
    return success, url_for("billing.pricing", _external=True) + "?cancelled=1"


class StripeGateway:
    def __init__(self, api_key: str, webhook_secret: str, api_base: str | None = None):
        addresses = {"api": api_base} if api_base else None
        self._client = stripe.StripeClient(api_key, base_addresses=addresses)  # type: ignore[arg-type]
        self._secret = webhook_secret

    @property
    def webhook_secret(self) -> str:
        return self._secret

    def create_session(self, order: Order, user: User, name: str) -> CheckoutSession:
        success, cancel = _urls()
        unit = order.amount_cents // order.quantity
        session = self._client.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "price_data": {
                            "currency": order.currency,
                            "unit_amount": unit,
                            "product_data": {"name": name},
                        },
                        "quantity": order.quantity,
                    }
                ],
                "success_url": success,
                "cancel_url": cancel,
                "client_reference_id": user.id,
                "customer_email": user.email,
                "metadata": {"order_id": order.id, "user_id": user.id, "item": order.item},
            },
            options={"idempotency_key": f"checkout-{order.id}"},
        )
        return CheckoutSession(session.id, session.url or "")


class DevGateway:
    """Local test checkout (TEST MODE only)."""

    def __init__(self, secret_key: str):
        if current_app.config["ENV"] == "production":
            raise RuntimeError("the development checkout is refused in production: set STRIPE_*")
        current_app.logger.warning("DevGateway: payments are simulated (TEST MODE)")
        self._secret = "whsec_dev_" + hashlib.sha256(secret_key.encode()).hexdigest()[:32]

    @property
    def webhook_secret(self) -> str:
        return self._secret

    def create_session(self, order: Order, user: User, name: str) -> CheckoutSession:
        session_id = f"cs_dev_{order.id}"
        return CheckoutSession(session_id, url_for("billing.test_checkout", order_id=order.id))


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header exactly as Stripe makes it (t=..., v1=HMAC-SHA256)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def dev_event(order: Order, event_type: str = "checkout.session.completed") -> bytes:
    """A checkout event as Stripe would send it, for the development checkout page."""
    event: dict[str, Any] = {
        "id": f"evt_dev_{uuid.uuid4().hex}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {
            "object": {
                "id": order.stripe_session_id,
                "object": "checkout.session",
                "payment_status": "paid",
                "payment_intent": f"pi_dev_{order.id}",
                "metadata": {"order_id": order.id, "user_id": order.owner_id, "item": order.item},
            }
        },
    }
    return json.dumps(event).encode()


def gateway() -> CheckoutGateway:
    cfg = current_app.config
    ext = current_app.extensions
    if "dhf_checkout" not in ext:
        if cfg.get("STRIPE_SECRET_KEY"):
            ext["dhf_checkout"] = StripeGateway(
                cfg["STRIPE_SECRET_KEY"], cfg["STRIPE_WEBHOOK_SECRET"], cfg.get("STRIPE_API_BASE")
            )
        else:
            ext["dhf_checkout"] = DevGateway(cfg["SECRET_KEY"])
    return ext["dhf_checkout"]
