"""Password reset by an emailed link, through a real SMTP server on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from webapp import accounts
from webapp.errors import DomainError
from webapp.extensions import db
from webapp.models import PasswordResetToken

from .. import factories
from ..conftest import TEST_PASSWORD
from ..smtp_server import smtp_server

NEW_PASSWORD = "violet kettle under nine moons"


@pytest.fixture
def mailbox_app(make_app):  # type: ignore[no-untyped-def]
    with smtp_server() as (box, url):
        yield make_app(SMTP_URL=url), box


def _ask(client, email: str = "ada@example.com"):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/password-reset", json={"email": email})


def test_reset_link_end_to_end_single_use(mailbox_app):
    app, box = mailbox_app
    client, browser = app.test_client(), app.test_client()
    headers = factories.api_signup(client, "ada@example.com")
    browser.post("/login", data={"email": "ada@example.com", "password": TEST_PASSWORD})
    assert browser.get("/dashboard").status_code == 200

    page = client.post("/forgot", data={"email": "ada@example.com"})
    assert page.status_code == 302
    [mail] = [m for m in box.to("ada@example.com") if "Reset" in m["Subject"]]
    assert "TEST MODE" not in mail.get_content()  # it really went through SMTP
    path = urlsplit(box.link(mail)).path
    with app.app_context():
        stored = db.session.query(PasswordResetToken).one()
        assert path.rsplit("/", 1)[1] not in stored.token_sha256  # only the hash is kept

    form = client.get(path)
    assert form.status_code == 200 and form.headers["Cache-Control"] == "no-store"
    weak = client.post(path, data={"password": "qwerty12345", "confirm": "qwerty12345"})
    assert weak.status_code == 422  # a weak choice does not burn the link
    done = client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 302 and done.location.endswith("/login")

    # every session and token of the account ended
    assert browser.get("/dashboard").status_code == 302
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    login = {"email": "ada@example.com", "password": NEW_PASSWORD}
    assert client.post("/api/v1/auth/tokens", json=login).status_code == 201

    again = client.post(path, data={"password": "another fine phrase 42", "confirm": "x"})
    assert again.status_code == 400
    assert accounts.BAD_RESET_LINK.encode() in again.data


def test_api_reset_same_answer_for_unknown_email(mailbox_app):
    app, box = mailbox_app
    client = app.test_client()
    factories.api_signup(client, "ada@example.com")
    box.messages.clear()
    known, unknown = _ask(client), _ask(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 202
    assert set(known.json) == set(unknown.json) == {"status", "message"}
    assert [m["To"] for m in box.messages] == ["ada@example.com"]

    token = box.link(box.messages[0]).rsplit("/", 1)[1]
    res = client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )
    assert res.status_code == 200 and res.json == {"status": "changed"}
    res = client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )
    assert res.status_code == 400
    assert res.json == {"error": "reset_link_invalid", "message": accounts.BAD_RESET_LINK}


def test_reset_link_expires_and_a_newer_one_supersedes_it(mailbox_app):
    app, box = mailbox_app
    client = app.test_client()
    factories.api_signup(client, "ada@example.com")
    _ask(client)
    _ask(client)
    first, second = (box.link(m).rsplit("/", 1)[1] for m in box.to("ada@example.com")[-2:])
    with pytest.raises(DomainError), app.test_request_context():
        accounts.reset_row(first)  # superseded
    with app.test_request_context():
        row = accounts.reset_row(second)
        later = row.expires_at + timedelta(seconds=1)
        assert abs(row.expires_at - row.created_at - timedelta(minutes=60)) < timedelta(seconds=5)
        with pytest.raises(DomainError, match="invalid, used or expired"):
            accounts.reset_password(second, NEW_PASSWORD, now=later)


def test_signup_of_an_existing_email_mails_its_owner(mailbox_app):
    app, box = mailbox_app
    client = app.test_client()
    factories.api_signup(client, "ada@example.com")
    res = client.post(
        "/api/v1/auth/signup", json={"email": "ada@example.com", "password": NEW_PASSWORD}
    )
    assert res.status_code == 201
    subjects = [m["Subject"] for m in box.to("ada@example.com")]
    assert subjects == [
        "Your Digital Human Factory account",
        "Someone tried to sign up with your email",
    ]


def test_without_smtp_development_mails_go_to_a_file(app, client):
    factories.api_signup(client, "ada@example.com")
    _ask(client)
    files = sorted(
        (Path(app.instance_path) / "mail").glob("*.eml"), key=lambda p: p.stat().st_mtime
    )
    body = files[-1].read_text()
    assert "TEST MODE: this mail was not sent" in body and "/reset/" in body
    assert files[-1].stat().st_mode & 0o777 == 0o600
