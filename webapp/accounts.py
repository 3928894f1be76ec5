"""Accounts: signup, password checks (argon2id), API tokens (only their hash is stored)."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import func, select

from compliance.audit import EventTag

from .audit import record_event
from .errors import Conflict, InvalidInput, Unauthorized
from .extensions import db
from .models import ApiToken, User, utcnow

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost one argon2 check.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TOKEN_PREFIX = "dhf_"
MIN_PASSWORD = 10
_COMMON = {"password", "passw0rd", "123456789", "1234567890", "qwertyuiop", "letmein123"}


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise InvalidInput(
            "Enter a valid email address, like name@example.com.", code="invalid_email"
        )
    return email


def check_password(password: str, email: str) -> None:
    """Raise InvalidInput with a specific message when the password is too weak."""
    if len(password or "") < MIN_PASSWORD:
        raise InvalidInput(
            f"Use a password of at least {MIN_PASSWORD} characters.", code="weak_password"
        )
    lowered = password.lower()
    if lowered in _COMMON or len(set(password)) < 4:
        raise InvalidInput(
            "That password is too easy to guess: pick a longer, less common one.",
            code="weak_password",
        )
    if email.split("@")[0] in lowered:
        raise InvalidInput("Don't put your email name in your password.", code="weak_password")


def signup(email: str, password: str) -> User:
    email = normalise_email(email)
    check_password(password, email)
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise Conflict(
            "An account with this email already exists: log in instead.", code="email_taken"
        )
    user = User(email=email, password_hash=_hasher.hash(password))
    db.session.add(user)
    db.session.flush()
    record_event(EventTag.AUTH_SIGNUP, actor_id=user.id)
    db.session.commit()
    return user


def authenticate(email: str, password: str) -> User:
    """The user for these credentials, or Unauthorized (same message either way)."""
    user = db.session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
        if user is None:
            raise VerificationError()
    except (VerificationError, InvalidHashError):
        record_event(EventTag.AUTH_LOGIN_FAILED, data={"user_known": user is not None})
        db.session.commit()
        raise Unauthorized("Wrong email or password.", code="bad_credentials") from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    record_event(EventTag.AUTH_LOGIN, actor_id=user.id)
    db.session.commit()
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User) -> tuple[str, datetime]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(days=int(current_app.config["TOKEN_TTL_DAYS"]))
    db.session.add(ApiToken(user_id=user.id, token_sha256=_digest(token), expires_at=expires))
    record_event(EventTag.AUTH_TOKEN_ISSUED, actor_id=user.id)
    db.session.commit()
    return token, expires


def user_for_token(token: str, *, now: datetime | None = None) -> User:
    now = now or utcnow()
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _digest(token)))
    expires = row.expires_at if row else None
    if expires is not None and expires.tzinfo is None:  # SQLite returns naive UTC
        expires = expires.replace(tzinfo=now.tzinfo)
    if row is None or row.revoked_at is not None or expires is None or expires <= now:
        raise Unauthorized(
            "This token is invalid or expired: create a new one at POST /api/v1/auth/tokens.",
            code="invalid_token",
        )
    row.last_used_at = now
    return row.user
