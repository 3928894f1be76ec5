"""Factories for test data, going through the same services as the product."""

from __future__ import annotations

import itertools

from flask.testing import FlaskClient

from webapp import accounts
from webapp.extensions import db
from webapp.models import Avatar, Subject, User

from .conftest import TEST_PASSWORD

_seq = itertools.count(1)


def user(email: str | None = None, password: str = TEST_PASSWORD) -> User:
    return accounts.signup(email or f"user{next(_seq)}@example.com", password)


def token_for(u: User) -> dict[str, str]:
    token, _ = accounts.issue_token(u)
    return {"Authorization": f"Bearer {token}"}


def subject(owner: User, name: str = "Ada Example", relation: str = "self") -> Subject:
    s = Subject(owner_id=owner.id, display_name=name, relation=relation)
    db.session.add(s)
    db.session.commit()
    return s


def avatar(owner: User, subj: Subject | None = None, name: str = "Ada presenter") -> Avatar:
    a = Avatar(owner_id=owner.id, subject_id=(subj or subject(owner)).id, name=name)
    db.session.add(a)
    db.session.commit()
    return a


def api_signup(client: FlaskClient, email: str, password: str = TEST_PASSWORD) -> dict[str, str]:
    """Sign up and get a token over HTTP; returns the Authorization header."""
    assert (
        client.post("/api/v1/auth/signup", json={"email": email, "password": password}).status_code
        == 201
    )
    res = client.post("/api/v1/auth/tokens", json={"email": email, "password": password})
    assert res.status_code == 201, res.json
    return {"Authorization": f"Bearer {res.json['token']}"}
