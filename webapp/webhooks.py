"""Signed event notifications to the customer's own URL (training or a render ended).

Each delivery is a POST of ``{"id", "type", "created", "data"}`` with the header
``DHF-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>``,
the scheme Stripe uses, so a receiver checks it the same way (and rejects old ``t``).
Deliveries run on the ``cpu`` queue and are retried with back-off on any non-2xx answer.

The URL is checked when it is set and again, freshly resolved, at every delivery
(``webapp.safe_http``: public addresses only, no redirects, https in production). A job
carries the owner's id and the event, never the URL or the secret: RQ logs and stores job
arguments, so the delivery reads both from the database.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
import uuid
from typing import Any

from flask import current_app

from . import queue as q
from . import safe_http
from .billing.gateway import sign_payload
from .extensions import db
from .models import User

log = logging.getLogger(__name__)

TIMEOUT_S = 10
RETRY_INTERVALS = (10, 60, 300, 1800)


def configure(user: User, url: str | None) -> str | None:
    """Set (or with ``None`` remove) the endpoint; returns a fresh signing secret."""
    if not url:
        user.webhook_url = user.webhook_secret = None
        db.session.commit()
        return None
    check(url)
    user.webhook_url, user.webhook_secret = url, "whsec_" + secrets.token_hex(24)
    db.session.commit()
    return user.webhook_secret


def check(url: str) -> safe_http.Target:
    """Resolve and check ``url`` under this app's rules; raises ``UnsafeURL`` (422)."""
    cfg = current_app.config
    return safe_http.check_url(
        url,
        require_https=cfg["ENV"] == "production",
        allow_loopback=bool(cfg["WEBHOOK_ALLOW_LOOPBACK"]),
    )


def verify(secret: str, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    """What a receiver does: check the HMAC and that the timestamp is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign_payload(body, secret, timestamp).split("v1=")[1]
    fresh = abs(time.time() - timestamp) <= tolerance_s
    return fresh and hmac.compare_digest(expected, parts.get("v1", ""))


def notify(owner_id: str, event_type: str, data: dict[str, Any]) -> str | None:
    """Queue one event for the owner's endpoint (after the commit); its id, or None."""
    from .jobs import redis

    user = db.session.get(User, owner_id)
    if user is None or not user.webhook_url:
        return None
    event_id = "evt_" + uuid.uuid4().hex
    event = {
        "id": event_id,
        "type": event_type,
        "created": int(time.time()),
        "data": data,
    }
    spec = q.JobSpec(deliver, "cpu", TIMEOUT_S * 3, len(RETRY_INTERVALS), RETRY_INTERVALS)
    q.enqueue_after_commit(db.session(), redis(), spec, event_id, owner_id, event)
    return event_id


def deliver(owner_id: str, event: dict[str, Any]) -> int | None:
    """POST one event to the owner's current endpoint (RQ job); raises so RQ retries.

    None when the owner removed the endpoint meanwhile. The URL is resolved and checked
    again here, and the connection goes to the address that passed (DNS rebinding)."""
    from .jobs import app

    with app().app_context():
        user = db.session.get(User, owner_id)
        if user is None or not user.webhook_url or not user.webhook_secret:
            return None
        url, secret = user.webhook_url, user.webhook_secret
        target = check(url)
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "DHF-Webhooks/1",
        "DHF-Signature": sign_payload(body, secret),
    }
    status = safe_http.post(target, body, headers, TIMEOUT_S)
    if not 200 <= status < 300:
        raise RuntimeError(
            f"webhook endpoint answered {status} (redirects are not followed); retrying later"
        )
    log.info("webhook %s delivered to %s (%d)", event.get("id"), target.host, status)
    return status
