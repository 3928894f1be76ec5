"""Accounts over HTTP: signup, passwords, tokens, sessions, CSRF, rate limits, ownership."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from webapp import accounts, create_app
from webapp.config import ConfigError
from webapp.errors import Unauthorized
from webapp.extensions import db
from webapp.models import ApiToken

from .. import factories
from ..conftest import TEST_PASSWORD


def test_signup_returns_user_id(client):
    res = client.post(
        "/api/v1/auth/signup", json={"email": "Ada@Example.com", "password": TEST_PASSWORD}
    )
    assert res.status_code == 201
    assert re.fullmatch(r"[0-9a-f]{32}", res.json["user_id"])


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "Use a password of at least 10 characters."),
        ("aaaaaaaaaaaa", accounts.TOO_EASY),
        ("1234567890", accounts.TOO_EASY),
        ("password12", accounts.TOO_EASY),  # passed the old hand-written list
        ("Password123", accounts.TOO_EASY),
        ("qwerty12345", accounts.TOO_EASY),
        ("ada-lovelace-99", "Don't put your email name in your password."),
    ],
)
def test_signup_refuses_weak_passwords(client, password, message):
    res = client.post(
        "/api/v1/auth/signup", json={"email": "ada-lovelace@example.com", "password": password}
    )
    assert res.status_code == 422
    assert res.json == {"error": "weak_password", "message": message}
    assert accounts.TOO_EASY == (
        "That password is too easy to guess: pick a longer, less common one."
    )


def test_signup_does_not_reveal_existing_emails(client):
    body = {"email": "ada@example.com", "password": TEST_PASSWORD}
    first = client.post("/api/v1/auth/signup", json=body)
    again = client.post(
        "/api/v1/auth/signup",
        json={"email": "ADA@example.com", "password": "other secret phrase 9"},
    )
    assert (first.status_code, again.status_code) == (201, 201)  # was 409 email_taken
    assert set(first.json) == set(again.json) == {"user_id"}
    assert re.fullmatch(r"[0-9a-f]{32}", again.json["user_id"])
    assert again.json["user_id"] != first.json["user_id"]
    # the account is untouched: the first password still logs in, the second does not
    ok = client.post("/api/v1/auth/tokens", json=body)
    assert ok.status_code == 201
    bad = {"email": "ada@example.com", "password": "other secret phrase 9"}
    assert client.post("/api/v1/auth/tokens", json=bad).status_code == 401


def test_web_signup_of_an_existing_email_answers_the_same(app):
    form = {"email": "ada@example.com", "password": TEST_PASSWORD, "confirm": TEST_PASSWORD}
    new, taken = app.test_client(), app.test_client()
    first = new.post("/signup", data=form)
    second = taken.post("/signup", data={**form, "email": "Ada@example.com"})
    assert (first.status_code, first.location) == (second.status_code, second.location)
    with new.session_transaction() as s1, taken.session_transaction() as s2:
        assert (
            s1["_flashes"]
            == s2["_flashes"]
            == [("ok", "Welcome! We sent a message to ada@example.com.")]
        )
    assert taken.get("/dashboard").status_code == 302  # but nobody got into the account


def test_signup_validates_input(client):
    assert client.post("/api/v1/auth/signup", data="x").json["error"] == "invalid_input"
    res = client.post(
        "/api/v1/auth/signup", json={"email": "not-an-email", "password": TEST_PASSWORD}
    )
    assert (res.status_code, res.json["error"]) == (422, "invalid_email")
    res = client.post("/api/v1/auth/signup", json={"email": "a@b.co"})
    assert res.json == {"error": "missing_fields", "message": "Missing field(s): password."}


def test_token_auth_and_me(client):
    headers = factories.api_signup(client, "ada@example.com")
    res = client.get("/api/v1/me", headers=headers)
    assert res.status_code == 200
    assert res.json["email"] == "ada@example.com"
    assert res.json["kyc_status"] == "unverified"
    assert res.json["credits"] == 0


def test_wrong_password_gets_no_token(client):
    factories.api_signup(client, "ada@example.com")
    res = client.post(
        "/api/v1/auth/tokens", json={"email": "ada@example.com", "password": "wrong password!"}
    )
    assert res.status_code == 401
    assert res.json == {"error": "bad_credentials", "message": "Wrong email or password."}
    unknown = client.post(
        "/api/v1/auth/tokens", json={"email": "nobody@example.com", "password": "x" * 12}
    )
    assert unknown.json == res.json  # no hint whether the account exists


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_token"),
        ("Bearer dhf_not-a-token", "invalid_token"),
        ("Basic abc", "missing_token"),
    ],
)
def test_api_refuses_missing_or_bad_tokens(client, header, code):
    headers = {"Authorization": header} if header else {}
    res = client.get("/api/v1/me", headers=headers)
    assert res.status_code == 401
    assert res.json["error"] == code


def test_tokens_expire_and_are_stored_hashed(app):
    with app.app_context():
        user = factories.user()
        token, expires = accounts.issue_token(user)
        stored = db.session.query(ApiToken).one()
        assert token not in stored.token_sha256
        assert accounts.user_for_token(token).id == user.id
        with pytest.raises(Unauthorized):
            accounts.user_for_token(token, now=expires + timedelta(seconds=1))


def test_web_signup_login_logout(client):
    res = client.post(
        "/signup",
        data={"email": "ada@example.com", "password": TEST_PASSWORD, "confirm": TEST_PASSWORD},
    )
    assert res.status_code == 302 and res.location.endswith("/dashboard")
    page = client.get("/dashboard")
    assert page.status_code == 200 and b"ada@example.com" in page.data

    assert client.post("/logout").status_code == 302
    assert client.get("/dashboard").location.startswith("/login")

    bad = client.post("/login", data={"email": "ada@example.com", "password": "nope nope nope"})
    assert bad.status_code == 401 and b"Wrong email or password." in bad.data
    ok = client.post(
        "/login?next=/dashboard", data={"email": "ada@example.com", "password": TEST_PASSWORD}
    )
    assert ok.status_code == 302 and ok.location.endswith("/dashboard")


def test_login_ignores_offsite_next(client):
    factories.api_signup(client, "ada@example.com")
    res = client.post(
        "/login?next=https://evil.example/",
        data={"email": "ada@example.com", "password": TEST_PASSWORD},
    )
    assert res.location.endswith("/dashboard")


def test_web_signup_shows_weak_password_message(client):
    res = client.post(
        "/signup", data={"email": "ada@example.com", "password": "short", "confirm": "short"}
    )
    assert res.status_code == 422
    assert b"Use a password of at least 10 characters." in res.data


def test_forms_refuse_requests_without_csrf_token(make_app):
    client = make_app(WTF_CSRF_ENABLED=True).test_client()
    factories.api_signup(client, "ada@example.com")
    form = {"email": "ada@example.com", "password": TEST_PASSWORD}

    refused = client.post("/login", data=form)
    assert refused.status_code == 400
    assert b"The form expired or was forged: reload the page and try again." in refused.data

    page = client.get("/login").data.decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    accepted = client.post("/login", data={**form, "csrf_token": token})
    assert accepted.status_code == 302


def test_auth_routes_are_rate_limited(make_app):
    client = make_app(RATELIMIT_AUTH="3 per minute").test_client()
    body = {"email": "ada@example.com", "password": "wrong password!"}
    codes = [client.post("/api/v1/auth/tokens", json=body).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    res = client.post("/api/v1/auth/tokens", json=body)
    assert res.json["error"] == "rate_limited"
    signup = {"email": "x@example.com", "password": TEST_PASSWORD}
    assert client.post("/api/v1/auth/signup", json=signup).status_code == 201  # its own bucket


def test_web_and_api_login_share_one_bucket(make_app):
    client = make_app(RATELIMIT_AUTH="4 per minute").test_client()
    body = {"email": "ada@example.com", "password": "wrong password!"}
    api = [client.post("/api/v1/auth/tokens", json=body).status_code for _ in range(2)]
    web = [client.post("/login", data=body).status_code for _ in range(3)]
    assert api + web == [401, 401, 401, 401, 429]  # was 8 guesses: a budget per route
    assert client.post("/api/v1/auth/tokens", json=body).status_code == 429
    assert client.get("/login").status_code == 200  # reading the form costs nothing


def test_users_cannot_read_each_others_objects(app, client):
    with app.app_context():
        owner, stranger = factories.user(), factories.user()
        avatar = factories.avatar(owner)
        owner_h, stranger_h = factories.token_for(owner), factories.token_for(stranger)
        avatar_id = avatar.id
    assert client.get(f"/api/v1/avatars/{avatar_id}", headers=owner_h).status_code == 200
    res = client.get(f"/api/v1/avatars/{avatar_id}", headers=stranger_h)
    assert res.status_code == 404
    assert res.json == {"error": "not_found", "message": f"No avatar with id {avatar_id}."}
    upload = client.post(f"/api/v1/avatars/{avatar_id}/training-video", headers=stranger_h)
    assert upload.status_code == 404


def test_production_hardens_cookies_and_requires_secrets(tmp_path, monkeypatch, redis_url):
    monkeypatch.setenv("DHF_INSTANCE_DIR", str(tmp_path))
    base = {
        "ENV": "production",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    with pytest.raises(ConfigError, match="DHF_SECRET_KEY must be set in production"):
        create_app(base)
    secrets = {
        "SECRET_KEY": "s" * 40,
        "MASTER_KEYS": "k:" + "A" * 43,
        "WATERMARK_KEYS": "w:" + "B" * 43,
        "STRIPE_SECRET_KEY": "sk_live_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
        "KYC_PROVIDER": "stripe_identity",
    }
    with pytest.raises(ConfigError, match="DHF_SMTP_URL"):
        create_app({**base, **secrets})
    secrets["SMTP_URL"] = "smtps://mailer:pw@mail.example.com"
    app = create_app({**base, **secrets})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["TEST_MODE"] is False
    assert not (tmp_path / "secret.key").exists()
    with app.app_context():
        db.engine.dispose()


def test_unknown_api_route_is_json(client):
    res = client.get("/api/v1/nope")
    assert res.status_code == 404 and res.json["error"] == "not_found"
