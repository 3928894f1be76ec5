"""Revocable auth: server-side sessions, token list and revoke, password change."""

from __future__ import annotations

from webapp.extensions import db
from webapp.models import UserSession

from .. import factories
from ..conftest import TEST_PASSWORD

NEW_PASSWORD = "violet kettle under nine moons"


def _login(client, email: str = "ada@example.com", password: str = TEST_PASSWORD) -> None:
    res = client.post("/login", data={"email": email, "password": password})
    assert res.status_code == 302, res.data


def _copy_cookie(source, target) -> None:
    target.set_cookie("session", source.get_cookie("session").value, domain="localhost")


def test_copied_session_cookie_stops_working_at_logout(app):
    owner, thief = app.test_client(), app.test_client()
    factories.api_signup(owner, "ada@example.com")
    _login(owner)
    _copy_cookie(owner, thief)
    assert thief.get("/dashboard").status_code == 200  # a copy works while the session lives
    assert owner.post("/logout").status_code == 302
    res = thief.get("/dashboard")  # was 200 for up to 31 days: the cookie was the session
    assert res.status_code == 302 and res.location.startswith("/login")


def test_log_out_everywhere_ends_every_browser(app):
    first, second = app.test_client(), app.test_client()
    headers = factories.api_signup(first, "ada@example.com")
    _login(first)
    _login(second)
    page = first.get("/account")
    assert b"Signed in on 2 browsers." in page.data
    res = first.post("/logout/everywhere")
    assert res.status_code == 302 and res.location.endswith("/login")
    assert first.get("/dashboard").status_code == 302
    assert second.get("/dashboard").status_code == 302
    assert first.get("/api/v1/me", headers=headers).status_code == 200  # tokens: one by one
    with app.app_context():
        assert db.session.query(UserSession).filter(UserSession.ended_at.is_(None)).count() == 0


def test_a_new_login_gets_a_new_session_id(app):
    client = app.test_client()
    factories.api_signup(client, "ada@example.com")
    _login(client)
    with client.session_transaction() as s:
        first = s["dhf_sid"]
    _login(client)
    with client.session_transaction() as s:
        assert s["dhf_sid"] != first
    with app.app_context():
        assert db.session.get(UserSession, first).ended_at is not None


def test_tokens_are_listed_and_revoked(client):
    headers = factories.api_signup(client, "ada@example.com")
    body = {"email": "ada@example.com", "password": TEST_PASSWORD}
    other = {
        "Authorization": "Bearer " + client.post("/api/v1/auth/tokens", json=body).json["token"]
    }
    listed = client.get("/api/v1/auth/tokens", headers=headers)
    assert listed.status_code == 200
    tokens = listed.json["tokens"]
    assert len(tokens) == 2 and sum(t["current"] for t in tokens) == 1
    assert all("token" not in t for t in tokens)  # never the secret again
    other_id = next(t["id"] for t in tokens if not t["current"])

    assert client.delete(f"/api/v1/auth/tokens/{other_id}", headers=headers).status_code == 204
    res = client.get("/api/v1/me", headers=other)  # was 200 until it expired (30 days)
    assert res.status_code == 401 and res.json["error"] == "invalid_token"
    assert [
        t["current"] for t in client.get("/api/v1/auth/tokens", headers=headers).json["tokens"]
    ] == [True]


def test_a_stranger_cannot_revoke_your_token(client):
    ada = factories.api_signup(client, "ada@example.com")
    eve = factories.api_signup(client, "eve@example.com")
    ada_id = client.get("/api/v1/auth/tokens", headers=ada).json["tokens"][0]["id"]
    res = client.delete(f"/api/v1/auth/tokens/{ada_id}", headers=eve)
    assert res.status_code == 404
    assert res.json == {"error": "not_found", "message": f"No token with id {ada_id}."}
    assert client.get("/api/v1/me", headers=ada).status_code == 200


def test_web_account_page_revokes_a_token(app):
    client = app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    _login(client)
    token_id = client.get("/api/v1/auth/tokens", headers=headers).json["tokens"][0]["id"]
    page = client.get("/account")
    assert f'data-token="{token_id}"'.encode() in page.data
    assert page.headers["Cache-Control"] == "no-store"
    assert client.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert b'id="no-tokens"' in client.get("/account").data


def test_api_password_change_ends_other_tokens_and_sessions(app):
    client, browser = app.test_client(), app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    body = {"email": "ada@example.com", "password": TEST_PASSWORD}
    other = {
        "Authorization": "Bearer " + client.post("/api/v1/auth/tokens", json=body).json["token"]
    }
    _login(browser)

    wrong = client.post(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 403
    assert wrong.json == {"error": "wrong_password", "message": "Your current password is wrong."}
    weak = client.post(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": TEST_PASSWORD, "new_password": "Password123"},
    )
    assert weak.status_code == 422 and weak.json["error"] == "weak_password"

    res = client.post(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert res.status_code == 200 and res.json == {"status": "changed"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200  # the caller's own
    assert client.get("/api/v1/me", headers=other).status_code == 401
    assert browser.get("/dashboard").status_code == 302
    assert client.post("/api/v1/auth/tokens", json=body).status_code == 401
    new_body = {**body, "password": NEW_PASSWORD}
    assert client.post("/api/v1/auth/tokens", json=new_body).status_code == 201


def test_web_password_change_keeps_this_browser_only(app):
    this, other = app.test_client(), app.test_client()
    factories.api_signup(this, "ada@example.com")
    _login(this)
    _login(other)
    weak = this.post(
        "/account/password",
        data={"current": TEST_PASSWORD, "password": "password12", "confirm": "password12"},
    )
    assert weak.status_code == 422
    assert b"That password is too easy to guess" in weak.data
    res = this.post(
        "/account/password",
        data={"current": TEST_PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert res.status_code == 302 and res.location.endswith("/account")
    assert this.get("/dashboard").status_code == 200
    assert other.get("/dashboard").status_code == 302
