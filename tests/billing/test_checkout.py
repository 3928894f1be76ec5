"""Paid training and credits through Stripe Checkout and signed webhooks (R27)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from webapp.billing import ledger, service
from webapp.billing.gateway import sign_payload
from webapp.extensions import db
from webapp.models import CreditEntry, Order, Render, StripeEvent

from .. import factories
from ..conftest import TEST_PASSWORD
from .conftest import WEBHOOK_SECRET, deliver, event


def _buy_credits(client, headers, minutes: int = 10) -> dict:
    res = client.post(
        "/api/v1/checkout", json={"item": "render_credits", "quantity": minutes}, headers=headers
    )
    assert res.status_code == 201, res.json
    return res.json


def _paid_session(order_id: str, session_id: str, status: str = "paid") -> dict:
    return {
        "id": session_id,
        "object": "checkout.session",
        "payment_status": status,
        "payment_intent": f"pi_{order_id}",
        "metadata": {"order_id": order_id},
    }


def _credits(client, headers) -> int:
    return client.get("/api/v1/me", headers=headers).json["credits"]


def test_checkout_session_is_created_with_idempotency_key_and_metadata(stripe_app, fake_stripe):
    client = stripe_app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    body = _buy_credits(client, headers, minutes=10)
    assert body["session_id"] == "cs_test_0001"
    assert body["checkout_url"].startswith("https://checkout.stripe.test/")
    sent = fake_stripe.requests[-1]
    assert sent["idempotency_key"] == f"checkout-{body['order_id']}"
    assert sent["auth"] == "Bearer sk_test_local"
    form = sent["form"]
    assert form["mode"] == "payment"
    assert form["metadata[order_id]"] == body["order_id"]
    assert form["line_items[0][price_data][unit_amount]"] == "100"
    assert form["line_items[0][quantity]"] == "10"
    assert form["success_url"].endswith("/billing?paid={CHECKOUT_SESSION_ID}")
    assert _credits(client, headers) == 0  # nothing granted before a webhook says paid


def test_paid_webhook_grants_once_even_when_delivered_twice(stripe_app):
    client = stripe_app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    body = _buy_credits(client, headers, minutes=10)
    payload = event(
        "checkout.session.completed", _paid_session(body["order_id"], body["session_id"])
    )
    first, again = deliver(client, payload), deliver(client, payload)
    assert (first.json["outcome"], again.json["outcome"]) == ("fulfilled", "duplicate")
    # a different event for the same session (Stripe may send several) grants nothing more
    late = event(
        "checkout.session.async_payment_succeeded",
        _paid_session(body["order_id"], body["session_id"]),
    )
    assert deliver(client, late).json["outcome"] == "already fulfilled"
    assert _credits(client, headers) == 600
    with stripe_app.app_context():
        assert db.session.scalar(select(Order.status)) == "paid"
        assert len(db.session.scalars(select(StripeEvent)).all()) == 2


def test_async_payment_completes_later(stripe_app):
    client = stripe_app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    body = _buy_credits(client, headers, minutes=2)
    pending = _paid_session(body["order_id"], body["session_id"], status="unpaid")
    assert deliver(client, event("checkout.session.completed", pending)).json["outcome"] == (
        "awaiting async payment"
    )
    assert _credits(client, headers) == 0
    paid = _paid_session(body["order_id"], body["session_id"])
    assert (
        deliver(client, event("checkout.session.async_payment_succeeded", paid)).json["outcome"]
        == "fulfilled"
    )
    assert _credits(client, headers) == 120


def test_out_of_order_failure_after_success_changes_nothing(stripe_app):
    client = stripe_app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    body = _buy_credits(client, headers, minutes=1)
    paid = _paid_session(body["order_id"], body["session_id"])
    deliver(client, event("checkout.session.async_payment_succeeded", paid))
    deliver(client, event("checkout.session.async_payment_failed", paid))
    assert _credits(client, headers) == 60


def test_bad_signature_and_stale_timestamp_are_refused(stripe_app):
    client = stripe_app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    body = _buy_credits(client, headers)
    payload = event(
        "checkout.session.completed", _paid_session(body["order_id"], body["session_id"])
    )
    forged = deliver(client, payload, secret="whsec_attacker")
    stale = deliver(client, payload, timestamp=int(time.time()) - 301)
    assert (forged.status_code, stale.status_code) == (400, 400)
    assert forged.json["error"] == "bad_signature"
    signature = sign_payload(payload, WEBHOOK_SECRET)  # signed, then the body is altered
    tampered = client.post(
        "/api/v1/stripe/webhook",
        data=payload.replace(b"paid", b"PAID"),
        headers={"Stripe-Signature": signature},
    )
    assert tampered.status_code == 400
    assert _credits(client, headers) == 0
    with stripe_app.app_context():
        assert db.session.scalar(select(Order.status)) == "open"


def test_refund_reverses_credits(stripe_app):
    client = stripe_app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    body = _buy_credits(client, headers, minutes=5)
    deliver(
        client,
        event("checkout.session.completed", _paid_session(body["order_id"], body["session_id"])),
    )
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": f"pi_{body['order_id']}",
        "refunded": True,
    }
    assert deliver(client, event("charge.refunded", charge)).json["outcome"] == "refunded"
    assert deliver(client, event("charge.refunded", charge)).json["outcome"].startswith("ignored")
    assert _credits(client, headers) == 0
    with stripe_app.app_context():
        kinds = [e.kind for e in db.session.scalars(select(CreditEntry).order_by(CreditEntry.id))]
    assert kinds == ["grant", "refund"]


def test_training_is_unlocked_by_its_paid_order(stripe_app):
    client = stripe_app.test_client()
    with stripe_app.app_context():
        owner = factories.user()
        avatar = factories.avatar(owner)
        headers, avatar_id = factories.token_for(owner), avatar.id
    res = client.post(
        "/api/v1/checkout",
        json={"item": "avatar_training", "avatar_id": avatar_id},
        headers=headers,
    )
    assert res.status_code == 201
    with stripe_app.app_context():
        assert not service.training_paid(avatar_id)
    deliver(
        client,
        event(
            "checkout.session.completed",
            _paid_session(res.json["order_id"], res.json["session_id"]),
        ),
    )
    with stripe_app.app_context():
        assert service.training_paid(avatar_id)
        assert db.session.get(Order, res.json["order_id"]).amount_cents == 12900
    item = {"item": "avatar_training", "avatar_id": avatar_id}
    again = client.post("/api/v1/checkout", json=item, headers=headers)
    assert again.json["error"] == "already_paid"


def test_checkout_input_is_checked(stripe_app):
    client = stripe_app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    bad = client.post(
        "/api/v1/checkout", json={"item": "render_credits", "quantity": 0}, headers=headers
    )
    assert bad.json == {
        "error": "bad_quantity",
        "message": "quantity must be whole minutes, 1 to 600.",
    }
    assert client.post("/api/v1/checkout", json={"item": "gold"}, headers=headers).json[
        "error"
    ] == ("bad_item")


def _owner_with_credits(minutes: int):  # type: ignore[no-untyped-def]
    """A user, an avatar and a paid credits order granted through the ledger."""
    owner = factories.user()
    avatar = factories.avatar(owner)
    order = Order(
        owner_id=owner.id,
        item="render_credits",
        quantity=minutes,
        amount_cents=100 * minutes,
        status="paid",
    )
    db.session.add(order)
    db.session.flush()
    ledger.grant(order)
    return owner, avatar


def test_render_reserve_settle_release(app):
    with app.app_context():
        owner, avatar = _owner_with_credits(2)
        done, failed = (Render(owner_id=owner.id, avatar_id=avatar.id, script="hi") for _ in "ab")
        db.session.add_all([done, failed])
        db.session.flush()
        ledger.reserve(done, 60)
        ledger.reserve(failed, 45)
        assert ledger.balance(owner.id) == 15
        with pytest.raises(ledger.InsufficientCredits, match="you have 15 s"):
            ledger.reserve(Render(id="x" * 32, owner_id=owner.id), 16)
        ledger.settle(done, 38)
        ledger.settle(done, 38)  # a retried job settles once
        ledger.release(failed)
        db.session.commit()
        assert ledger.balance(owner.id) == 120 - 38


@pytest.mark.slow
def test_two_renders_racing_for_the_last_credits(app, backend):
    """Exactly one of two concurrent reservations wins (run against PostgreSQL too)."""
    if backend.name == "sqlite":
        pytest.skip("the race is checked on PostgreSQL, where transactions really overlap")
    with app.app_context():
        owner, avatar = _owner_with_credits(1)
        renders = [Render(owner_id=owner.id, avatar_id=avatar.id, script=s) for s in "ab"]
        db.session.add_all(renders)
        db.session.commit()
        ids, owner_id = [r.id for r in renders], owner.id
    barrier, results = threading.Barrier(2), {}

    def attempt(render_id: str) -> None:
        with app.app_context():
            render = db.session.get(Render, render_id)
            barrier.wait()
            try:
                ledger.reserve(render, 60)
                time.sleep(0.2)  # hold the lock a while: the other must wait, then see us
                db.session.commit()
                results[render_id] = "reserved"
            except ledger.InsufficientCredits:
                db.session.rollback()
                results[render_id] = "refused"

    threads = [threading.Thread(target=attempt, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results.values()) == ["refused", "reserved"]
    with app.app_context():
        assert ledger.balance(owner_id) == 0


def test_dev_checkout_page_completes_the_webhook_path(app):
    """Without Stripe keys (development): the local page pays through a signed event."""
    client = app.test_client()
    client.post(
        "/signup",
        data={"email": "ada@example.com", "password": TEST_PASSWORD, "confirm": TEST_PASSWORD},
    )
    res = client.post("/checkout", data={"item": "render_credits", "quantity": "4"})
    assert res.status_code == 302 and "/checkout/test/" in res.location
    assert b"TEST MODE" in client.get(res.location).data
    paid = client.post(res.location)
    assert paid.status_code == 302 and paid.location.endswith("/billing")
    assert b'data-seconds="240"' in client.get("/billing").data
    with app.app_context():
        assert db.session.scalar(select(StripeEvent.type)) == "checkout.session.completed"


def test_production_refuses_to_start_without_stripe(tmp_path, monkeypatch, redis_url):
    from webapp import create_app
    from webapp.config import ConfigError

    monkeypatch.setenv("DHF_INSTANCE_DIR", str(tmp_path))
    secrets = {
        "SECRET_KEY": "s" * 40,
        "MASTER_KEYS": "k:" + "A" * 43,
        "WATERMARK_KEYS": "w:" + "B" * 43,
        "KYC_PROVIDER": "stripe_identity",
    }
    with pytest.raises(ConfigError, match="STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET"):
        create_app(
            {
                "ENV": "production",
                "REDIS_URL": redis_url,
                "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
                **secrets,
            }
        )


def test_admin_sees_every_order_and_others_get_404(app):
    client = app.test_client()
    with app.app_context():
        _owner_with_credits(3)
        admin = factories.user("boss@example.com")
        admin.is_admin = True
        db.session.commit()
        factories.user("ada@example.com")
    client.post("/login", data={"email": "ada@example.com", "password": TEST_PASSWORD})
    assert client.get("/admin/orders").status_code == 404
    client.post("/logout")
    client.post("/login", data={"email": "boss@example.com", "password": TEST_PASSWORD})
    page = client.get("/admin/orders")
    assert page.status_code == 200 and b"3.00 EUR" in page.data


def test_future_signature_event_without_type_and_odd_fields_are_4xx(stripe_app):
    client = stripe_app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    body = _buy_credits(client, headers)
    payload = event(
        "checkout.session.completed", _paid_session(body["order_id"], body["session_id"])
    )
    future = deliver(client, payload, timestamp=int(time.time()) + 3600)
    assert (future.status_code, future.json["error"]) == (400, "bad_signature")
    untyped = deliver(client, b'{"id": "evt_x", "data": {"object": {}}}')
    assert (untyped.status_code, untyped.json["error"]) == (400, "bad_event")
    assert deliver(client, b"[1]").status_code == 400
    assert _credits(client, headers) == 0
    for bad in (
        {"item": "avatar_training", "avatar_id": {"a": 1}},
        {"item": "render_credits", "quantity": True},
        {"item": "render_credits", "quantity": "5"},
    ):
        res = client.post("/api/v1/checkout", json=bad, headers=headers)
        assert (res.status_code, res.json["error"]) == (422, "bad_field"), bad
    res = client.post(
        "/api/v1/checkout", json={"item": "render_credits", "quantity": True}, headers=headers
    )
    assert res.json["message"] == "quantity must be a whole number."


def test_stripe_webhook_is_rate_limited_per_ip(make_app, fake_stripe):
    app = make_app(
        STRIPE_SECRET_KEY="sk_test_local",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=fake_stripe.url,
        RATELIMIT_STRIPE_WEBHOOK="3 per minute",
    )
    client = app.test_client()
    codes = [deliver(client, b"{}", secret="whsec_wrong").status_code for _ in range(4)]
    assert codes == [400, 400, 400, 429]
