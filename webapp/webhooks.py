"""Signed event notifications to the customer's own URL (training or a render ended).

Each delivery is a POST of ``{"id", "type", "created", "data"}`` with the header
``DHF-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>``,
the scheme Stripe uses, so a receiver checks it the same way (and rejects old ``t``).
Deliveries run on the ``cpu`` queue and are retried with back-off on any non-2xx answer.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlparse

from flask import current_app

from pipeline import queue as q

from .billing.gateway import sign_payload
from .errors import InvalidInput
from .extensions import db
from .models import User

TIMEOUT_S = 10
RETRY_INTERVALS = (10, 60, 300, 1800)


def configure(user: User, url: str | None) -> str | None:
    """Set (or with ``None`` remove) the endpoint; returns a fresh signing secret."""
    if not url:
        user.webhook_url = user.webhook_secret = None
        db.session.commit()
        return None
    parsed = urlparse(url)
    secure = parsed.scheme == "https" or current_app.config["ENV"] != "production"
    if parsed.scheme not in ("http", "https") or not parsed.netloc or not secure:
        raise InvalidInput("The webhook URL must be an https:// address.", code="bad_webhook_url")
    user.webhook_url, user.webhook_secret = url, "whsec_" + secrets.token_hex(24)
    db.session.commit()
    return user.webhook_secret


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
    event = {"id": "evt_" + uuid.uuid4().hex, "type": event_type, "created": int(time.time()),
             "data": data}  # fmt: skip
    spec = q.JobSpec("webapp.webhooks.deliver", "cpu", TIMEOUT_S * 3,
                     len(RETRY_INTERVALS), RETRY_INTERVALS)  # fmt: skip
    q.enqueue_after_commit(db.session(), redis(), spec, event["id"], user.webhook_url,
                           user.webhook_secret, event)  # fmt: skip
    return str(event["id"])


def deliver(url: str, secret: str, event: dict[str, Any]) -> int:
    """POST one event (RQ job); raises on failure so RQ retries it."""
    body = json.dumps(event, separators=(",", ":")).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "DHF-Webhooks/1",
        "DHF-Signature": sign_payload(body, secret)})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise RuntimeError(f"webhook endpoint answered {exc.code}; retrying later") from None
