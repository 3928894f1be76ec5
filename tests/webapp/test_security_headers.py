"""Security headers on every response; X-Forwarded-For believed only behind trusted proxies."""

from __future__ import annotations

import http.client
import json

import pytest

from webapp.security import CONTENT_SECURITY_POLICY

from .. import factories


@pytest.mark.parametrize("path", ["/", "/login", "/api/v1/openapi.json", "/nope", "/verify"])
def test_every_response_has_the_security_headers(client, path):
    res = client.get(path)
    assert res.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert res.headers["Referrer-Policy"] == "same-origin"
    assert res.headers["X-Frame-Options"] == "DENY"
    assert res.headers["Cache-Control"] == "no-store"


def test_static_files_stay_cacheable(client):
    res = client.get("/static/app.css")
    assert res.status_code == 200
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert res.headers.get("Cache-Control") != "no-store"
    res.close()


def test_secrets_are_not_cached(client):
    factories.api_signup(client, "ada@example.com")
    res = client.post(
        "/api/v1/auth/tokens",
        json={"email": "ada@example.com", "password": "correct horse battery staple"},
    )
    assert res.status_code == 201 and res.headers["Cache-Control"] == "no-store"


def _guesses(client, ips):  # type: ignore[no-untyped-def]
    body = {"email": "ada@example.com", "password": "wrong password!"}
    return [
        client.post("/api/v1/auth/tokens", json=body, headers={"X-Forwarded-For": ip}).status_code
        for ip in ips
    ]


def test_x_forwarded_for_is_ignored_without_trusted_proxies(make_app):
    client = make_app(RATELIMIT_AUTH="2 per minute").test_client()
    # a client naming a new address each time still has one budget (its socket's)
    assert _guesses(client, ["1.1.1.1", "2.2.2.2", "3.3.3.3"]) == [401, 401, 429]


def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(make_app):
    app = make_app(RATELIMIT_AUTH="2 per minute", TRUSTED_PROXIES=1)
    client = app.test_client()
    assert _guesses(client, ["1.1.1.1", "1.1.1.1", "1.1.1.1"]) == [401, 401, 429]
    assert _guesses(client, ["2.2.2.2"]) == [401]  # another client behind the same proxy
    # only the last hop counts: a spoofed left-most address does not pick a bucket
    assert _guesses(client, ["9.9.9.9, 1.1.1.1"]) == [429]


def _guesses_over_http(port: int, ips: list[str]) -> list[int]:
    body = json.dumps({"email": "ada@example.com", "password": "wrong password!"})
    answers = []
    for ip in ips:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json", "X-Forwarded-For": ip}
        conn.request("POST", "/api/v1/auth/tokens", body=body, headers=headers)
        answers.append(conn.getresponse().status)
        conn.close()
    return answers


def test_dhf_serve_hands_forwarded_headers_to_the_app_only_behind_trusted_proxies(make_app):
    """The same over ``dhf serve``'s waitress: it drops ``X-Forwarded-*`` by default, which
    behind nginx put every client in the proxy's one bucket; now it passes them on when
    ``DHF_TRUSTED_PROXIES`` is set (and still drops them when it is not)."""
    trusted = make_app(RATELIMIT_AUTH="2 per minute", TRUSTED_PROXIES=1)
    with factories.waitress(trusted) as port:
        assert _guesses_over_http(port, ["1.1.1.1", "2.2.2.2", "1.1.1.1", "1.1.1.1"]) == [
            401,
            401,
            401,
            429,
        ]
    untrusted = make_app(RATELIMIT_AUTH="2 per minute")
    with factories.waitress(untrusted) as port:
        assert _guesses_over_http(port, ["3.3.3.3", "4.4.4.4", "5.5.5.5"]) == [401, 401, 429]
