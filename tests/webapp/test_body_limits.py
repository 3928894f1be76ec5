"""Bodies are refused by size before anything buffers them (issue 14)."""

from __future__ import annotations

import http.client
import json

from .. import factories


def test_oversized_json_body_is_413_envelope(make_app):
    app = make_app(JSON_MAX_BYTES=1024)
    client = app.test_client()
    body = json.dumps({"email": "a@example.com", "password": "x" * 4096})
    res = client.post("/api/v1/auth/signup", data=body, content_type="application/json")
    assert res.status_code == 413
    assert res.json == {
        "error": "too_large",
        "message": "This request may carry at most 1024 bytes.",
    }


def test_default_json_limit_is_one_mib(make_app):
    app = make_app()
    res = app.test_client().post(
        "/api/v1/auth/signup",
        data=b"{" + b" " * (1024 * 1024 + 1) + b"}",
        content_type="application/json",
    )
    assert res.status_code == 413 and res.json["error"] == "too_large"


def test_waitress_refuses_before_buffering_with_the_envelope(make_app):
    app = make_app(MAX_CONTENT_LENGTH=4096, JSON_MAX_BYTES=1024)
    with factories.waitress(app) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/api/v1/verify")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(10 * 1024**3))  # 10 GiB announced, none sent
        conn.endheaders()
        res = conn.getresponse()
        assert res.status == 413
        assert res.getheader("Content-Type") == "application/json"
        assert json.loads(res.read())["error"] == "too_large"
        conn.close()
