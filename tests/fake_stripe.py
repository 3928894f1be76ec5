"""A local HTTP server speaking Stripe's wire format, shared by billing and identity tests.

stripe-python is pointed at it with ``STRIPE_API_BASE``; it receives the same
form-encoded requests (with ``Idempotency-Key``) that Stripe would, and answers with
Checkout Session and Identity VerificationSession objects. A replayed idempotency key
returns the first response, as Stripe does. Tests move a VerificationSession on as a
person and Stripe would (:meth:`FakeStripe.finish`). Webhook payloads are signed exactly
as Stripe signs them.

Conftests bring the fixtures in with ``from ..fake_stripe import fake_stripe, stripe_app``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from webapp.billing.gateway import sign_payload

WEBHOOK_SECRET = "whsec_test_secret"
SESSIONS = "/v1/identity/verification_sessions"
REDACTABLE = ("requires_input", "verified")  # Stripe redacts sessions in these states only


@dataclass
class FakeStripe:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    verification_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # file id -> contents (files API)

    def add_selfie(self, session_id: str, image: bytes) -> str:
        """Give a session a verification report whose live selfie is ``image``."""
        n = len(self.files) + 1
        selfie, document = f"file_selfie_{n:04d}", f"file_document_{n:04d}"
        self.files[selfie], self.files[document] = image, image
        self.verification_sessions[session_id]["last_verification_report"] = {
            "id": f"vr_test_{n:04d}",
            "object": "identity.verification_report",
            "type": "document",
            "document": {"status": "verified", "files": [document]},
            "selfie": {"status": "verified", "document": document, "selfie": selfie},
        }
        return selfie

    def finish(self, session_id: str, status: str, **fields: Any) -> dict[str, Any]:
        """Move a VerificationSession on (``verified_outputs``, ``last_error``, ...)."""
        session = self.verification_sessions[session_id]
        session.update(status=status, **fields)
        return dict(session)

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if (r["method"], r["path"]) == (method, path)]


def _nest(form: dict[str, str]) -> dict[str, Any]:
    """``{"a[b][c]": v}`` -> ``{"a": {"b": {"c": v}}}`` (Stripe's form encoding)."""
    out: dict[str, Any] = {}
    for key, value in form.items():
        *parents, leaf = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = {"true": True, "false": False}.get(value, value)
    return out


def _checkout_session(n: int, form: dict[str, str]) -> dict[str, Any]:
    params = _nest(form)
    line = params["line_items"]["0"]
    return {
        "id": f"cs_test_{n:04d}",
        "object": "checkout.session",
        "mode": form.get("mode"),
        "status": "open",
        "payment_status": "unpaid",
        "url": f"https://checkout.stripe.test/c/pay/{n}",
        "client_reference_id": form.get("client_reference_id"),
        "metadata": params.get("metadata", {}),
        "amount_total": int(line["price_data"]["unit_amount"]) * int(line["quantity"]),
        "currency": line["price_data"]["currency"],
    }


def _verification_session(n: int, form: dict[str, str]) -> dict[str, Any]:
    params = _nest(form)
    return {
        "id": f"vs_test_{n:04d}",
        "object": "identity.verification_session",
        "client_secret": f"vs_test_{n:04d}_secret_test",
        "created": int(time.time()),
        "last_error": None,
        "last_verification_report": None,
        "livemode": False,
        "metadata": params.get("metadata", {}),
        "options": params.get("options", {}),
        "redaction": None,
        "status": "requires_input",  # nothing submitted yet, no last_error
        "type": params.get("type"),
        "url": f"https://verify.stripe.test/start/test_{n:04d}",
        "verified_outputs": None,
    }


def _handler(state: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            form = dict(parse_qsl(body))
            key = self._log("POST", self.path, form)
            if key in state.by_key:
                self._send(200, state.by_key[key])
                return
            status, obj = self._post(form)
            if status == 200:
                state.by_key[key or obj["id"]] = obj
            self._send(status, obj)

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            query = dict(parse_qsl(url.query))
            self._log("GET", url.path, query)
            contents = re.fullmatch(r"/v1/files/(\w+)/contents", url.path)
            if contents and contents.group(1) in state.files:  # files.stripe.com
                self._send_bytes(state.files[contents.group(1)])
                return
            session = state.verification_sessions.get(url.path.removeprefix(SESSIONS + "/"))
            if not url.path.startswith(SESSIONS + "/") or session is None:
                self._send(*self._missing())
                return
            expand = set(query.values())
            report = session.get("last_verification_report")
            shown = {
                **session,
                "verified_outputs": session["verified_outputs"]
                if "verified_outputs" in expand
                else None,
                "last_verification_report": report
                if "last_verification_report" in expand
                else (report or {}).get("id"),
            }
            self._send(200, shown)

        def _log(self, method: str, path: str, form: dict[str, str]) -> str | None:
            key = self.headers.get("Idempotency-Key")
            state.requests.append(
                {
                    "method": method,
                    "path": path,
                    "form": form,
                    "idempotency_key": key,
                    "auth": self.headers.get("Authorization"),
                }
            )
            return key

        def _post(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
            if self.path == "/v1/checkout/sessions":
                made = [o for o in state.by_key.values() if o["object"] == "checkout.session"]
                return 200, _checkout_session(len(made) + 1, form)
            if self.path == SESSIONS:
                session = _verification_session(len(state.verification_sessions) + 1, form)
                state.verification_sessions[session["id"]] = session
                return 200, session
            match = re.fullmatch(SESSIONS + r"/(\w+)/redact", self.path)
            session = state.verification_sessions.get(match[1]) if match else None
            if session is None:
                return self._missing()
            if session["status"] not in REDACTABLE:
                return 400, {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "session_invalid_status",
                        "message": "This session cannot be redacted.",
                    }
                }
            session["redaction"] = {"status": "processing"}
            return 200, dict(session)

        def _missing(self) -> tuple[int, dict[str, Any]]:
            return 404, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No such object: {self.path}",
                }
            }

        def _send_bytes(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
    return json.dumps(
        {
            "id": event_id or f"evt_{time.time_ns()}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": obj},
        }
    ).encode()


def deliver(client, payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/stripe/webhook",
        data=payload,
        headers={
            "Stripe-Signature": sign_payload(payload, secret, timestamp),
            "Content-Type": "application/json",
        },
    )
