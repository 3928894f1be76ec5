"""Checkout and fulfilment. Fulfilment happens ONLY from signature-verified webhooks (R27)."""

from __future__ import annotations

import json
import time
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from compliance.audit import EventTag

from ..audit import record_event
from ..errors import DomainError, InvalidInput
from ..extensions import db
from ..identity import stripe_identity
from ..models import Avatar, Order, OrderStatus, StripeEvent, User, utcnow
from ..ownership import get_owned_or_404
from . import ledger
from .gateway import gateway

MAX_MINUTES = 600
SIGNATURE_TOLERANCE_S = 300  # a signature older or newer than this is refused


class BadWebhook(DomainError):
    status, code = 400, "bad_signature"


class BadEvent(DomainError):
    status, code = 400, "bad_event"


def prices() -> dict[str, int]:
    cfg = current_app.config
    return {
        "avatar_training": int(cfg["PRICE_AVATAR_TRAINING_CENTS"]),
        "render_minute": int(cfg["PRICE_RENDER_MINUTE_CENTS"]),
    }


def create_checkout(
    user: User, item: str, avatar_id: str | None, quantity: Any
) -> tuple[Order, str]:
    """Create an order and its Checkout Session; returns the order and the payment URL."""
    price = prices()
    if item == "avatar_training":
        if not avatar_id:
            raise InvalidInput("Name the avatar to train: avatar_id.", code="missing_fields")
        avatar = get_owned_or_404(Avatar, avatar_id, user.id)
        if training_paid(avatar.id):
            raise InvalidInput("This avatar's training is already paid.", code="already_paid")
        order = Order(
            owner_id=user.id,
            item=item,
            avatar_id=avatar.id,
            quantity=1,
            amount_cents=price["avatar_training"],
        )
        name = f"Avatar training: {avatar.name}"
    elif item == "render_credits":
        if not isinstance(quantity, int) or not 1 <= quantity <= MAX_MINUTES:
            raise InvalidInput(
                f"quantity must be whole minutes, 1 to {MAX_MINUTES}.", code="bad_quantity"
            )
        order = Order(
            owner_id=user.id,
            item=item,
            quantity=quantity,
            amount_cents=price["render_minute"] * quantity,
        )
        name = "Render credits (minutes of video)"
    else:
        raise InvalidInput("item must be 'avatar_training' or 'render_credits'.", code="bad_item")
    order.currency = current_app.config["CURRENCY"]
    db.session.add(order)
    db.session.flush()
    session = gateway().create_session(order, user, name)
    order.stripe_session_id = session.id
    db.session.commit()
    return order, session.url


def training_paid(avatar_id: str) -> bool:
    query = select(Order.id).where(
        Order.avatar_id == avatar_id,
        Order.item == "avatar_training",
        Order.status == OrderStatus.PAID,
    )
    return db.session.scalar(query) is not None


def handle_webhook(payload: bytes, signature: str | None) -> str:
    """Verify, de-duplicate and apply one webhook event; returns what was done."""
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode(),
            signature or "",
            gateway().webhook_secret,
            tolerance=SIGNATURE_TOLERANCE_S,
        )
        _refuse_future(signature or "")
        event = json.loads(payload)  # only after the signature holds
    except (ValueError, UnicodeDecodeError, stripe.SignatureVerificationError):
        raise BadWebhook("Webhook signature or timestamp is invalid.") from None
    if not _well_formed(event):
        raise BadEvent("The event needs a string id and type and a data.object object.")
    try:
        with db.session.begin_nested():
            db.session.add(StripeEvent(id=event["id"], type=event["type"]))
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    outcome = _apply(event["type"], event["data"]["object"])
    db.session.commit()
    return outcome


def _refuse_future(signature: str) -> None:
    """Stripe's check only refuses old signatures; one dated ahead is refused here too."""
    stamps = [p[2:] for p in signature.split(",") if p.startswith("t=")]
    if not stamps or int(stamps[0]) > time.time() + SIGNATURE_TOLERANCE_S:
        raise ValueError("signature timestamp in the future")


def _well_formed(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    )


def _order_for(obj: dict[str, Any]) -> Order | None:
    order_id = (obj.get("metadata") or {}).get("order_id")
    order = db.session.get(Order, order_id) if order_id else None
    if order is None and obj.get("object") == "checkout.session":
        order = db.session.scalar(select(Order).where(Order.stripe_session_id == obj.get("id")))
    if order is None and obj.get("payment_intent"):
        order = db.session.scalar(
            select(Order).where(Order.stripe_payment_intent == obj["payment_intent"])
        )
    return order


def _apply(event_type: str, obj: dict[str, Any]) -> str:
    if event_type.startswith(stripe_identity.EVENT_PREFIX):
        return stripe_identity.on_event(event_type, obj)
    order = _order_for(obj)
    if order is None:
        return "ignored: no order"
    if event_type == "checkout.session.completed":
        if obj.get("payment_status") == "paid":
            return _fulfil(order, obj)
        order.status = OrderStatus.PENDING if order.status == OrderStatus.OPEN else order.status
        return "awaiting async payment"
    if event_type == "checkout.session.async_payment_succeeded":
        return _fulfil(order, obj)
    if event_type in ("checkout.session.async_payment_failed", "checkout.session.expired"):
        if order.status in (OrderStatus.OPEN, OrderStatus.PENDING):
            order.status = (
                OrderStatus.FAILED if event_type.endswith("failed") else OrderStatus.EXPIRED
            )
        return order.status
    if event_type == "charge.refunded":
        return _refund(order)
    return f"ignored: {event_type}"


def _fulfil(order: Order, obj: dict[str, Any]) -> str:
    """Mark paid and grant, once per order whatever the number of events (by session id)."""
    if order.status in (OrderStatus.PAID, OrderStatus.REFUNDED):
        return "already fulfilled"
    order.status, order.paid_at = OrderStatus.PAID, utcnow()
    order.stripe_payment_intent = obj.get("payment_intent") or order.stripe_payment_intent
    ledger.grant(order)
    data = {"order": order.id, "item": order.item, "amount": order.amount_cents}
    record_event(EventTag.PAYMENT_FULFILLED, actor_id=order.owner_id, data=data)
    return "fulfilled"


def _refund(order: Order) -> str:
    if order.status != OrderStatus.PAID:
        return f"ignored: order is {order.status}"
    order.status, order.refunded_at = OrderStatus.REFUNDED, utcnow()
    ledger.refund(order)
    record_event(EventTag.PAYMENT_REFUNDED, actor_id=order.owner_id, data={"order": order.id})
    return "refunded"
