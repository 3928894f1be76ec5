"""A local HTTP server speaking Stripe's wire format for Checkout Sessions.

stripe-python is pointed at it with ``STRIPE_API_BASE``; it receives the same
form-encoded POSTs (with ``Idempotency-Key``) that Stripe would, and answers with
Checkout Session objects. A replayed idempotency key returns the first response, as
Stripe does. Webhook payloads are signed in tests exactly as Stripe signs them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest

from webapp.billing.gateway import sign_payload

WEBHOOK_SECRET = "whsec_test_secret"


@dataclass
class FakeStripe:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)


def _handler(state: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            form = dict(parse_qsl(body))
            key = self.headers.get("Idempotency-Key")
            state.requests.append({"path": self.path, "form": form, "idempotency_key": key,
                                   "auth": self.headers.get("Authorization")})  # fmt: skip
            if self.path != "/v1/checkout/sessions":
                self._send(404, {"error": {"type": "invalid_request_error", "message": "no route"}})
                return
            if key in state.by_key:
                self._send(200, state.by_key[key])
                return
            session = {
                "id": f"cs_test_{len(state.by_key) + 1:04d}",
                "object": "checkout.session",
                "mode": form.get("mode"),
                "status": "open",
                "payment_status": "unpaid",
                "url": f"https://checkout.stripe.test/c/pay/{len(state.by_key) + 1}",
                "client_reference_id": form.get("client_reference_id"),
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
                "amount_total": int(form["line_items[0][price_data][unit_amount]"])
                * int(form["line_items[0][quantity]"]),
                "currency": form["line_items[0][price_data][currency]"],
            }
            state.by_key[key or session["id"]] = session
            self._send(200, session)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_test")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe("")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def stripe_app(make_app, fake_stripe):  # type: ignore[no-untyped-def]
    return make_app(
        STRIPE_SECRET_KEY="sk_test_local",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=fake_stripe.url,
    )


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    return json.dumps({
        "id": event_id or f"evt_{time.time_ns()}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }).encode()  # fmt: skip


def deliver(client, payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": sign_payload(payload, secret, timestamp),
                 "Content-Type": "application/json"},
    )  # fmt: skip
