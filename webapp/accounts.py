"""Accounts: signup, passwords (argon2id, strength by zxcvbn), change and emailed reset,
API tokens (only their hash is stored; listed and revoked by their owner).

Signup never tells whether an email is taken: a new address gets an account and a
welcome mail, a known one a mail to its owner, and both callers the same answer.
A password change or reset ends the user's other sessions and tokens (``sessions``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, url_for
from sqlalchemy import func, select, update
from zxcvbn import zxcvbn

from compliance.audit import EventTag

from . import mail, sessions
from .audit import record_event
from .errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unauthorized
from .extensions import db
from .models import ApiToken, PasswordResetToken, Sanction, User, new_id, utcnow

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost one argon2 check.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TOKEN_PREFIX = "dhf_"
MIN_PASSWORD = 10
MAX_PASSWORD = 256  # zxcvbn's cost grows with length; nobody types more
TOO_EASY = "That password is too easy to guess: pick a longer, less common one."


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise InvalidInput(
            "Enter a valid email address, like name@example.com.", code="invalid_email"
        )
    return email


def check_password(password: str, email: str) -> None:
    """Raise InvalidInput (``weak_password``) with a specific message when the password is
    too short, contains the email's name, or zxcvbn scores it under PASSWORD_MIN_SCORE."""
    password = password or ""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"Use a password of at least {MIN_PASSWORD} characters.", code="weak_password"
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(
            f"Use a password of at most {MAX_PASSWORD} characters.", code="weak_password"
        )
    name = email.split("@")[0]
    if len(name) >= 3 and name in password.lower():
        raise InvalidInput("Don't put your email name in your password.", code="weak_password")
    estimate = zxcvbn(password, user_inputs=[email, name, "digital human factory"])
    if estimate["score"] < int(current_app.config["PASSWORD_MIN_SCORE"]):
        raise InvalidInput(TOO_EASY, code="weak_password")


def signup(email: str, password: str) -> User:
    """Create an account; Conflict when the email is taken (for scripts and tests: the
    HTTP views use ``register``, which does not tell)."""
    email = normalise_email(email)
    check_password(password, email)
    if _find(email):
        raise Conflict(
            "An account with this email already exists: log in instead.", code="email_taken"
        )
    user = User(email=email, password_hash=_hasher.hash(password))
    db.session.add(user)
    db.session.flush()
    record_event(EventTag.AUTH_SIGNUP, actor_id=user.id)
    db.session.commit()
    return user


def register(email: str, password: str) -> tuple[User | None, str]:
    """Signup that does not reveal whether the email is taken.

    Returns ``(user, user_id)``: a new user and its id, or ``(None, decoy id)`` when the
    email has an account, whose owner is told by mail instead. Both paths hash the
    password once and send one mail, so neither answer nor timing shows which it was.
    """
    email = normalise_email(email)
    check_password(password, email)
    existing = _find(email)
    if existing is None:
        user = signup(email, password)
        mail.send(
            email, "Your Digital Human Factory account", _WELCOME.format(login=_link("auth.login"))
        )
        return user, user.id
    _hasher.hash(password)  # the same work as a real signup
    mail.send(
        email,
        "Someone tried to sign up with your email",
        _ALREADY.format(login=_link("auth.login"), forgot=_link("auth.forgot")),
    )
    return None, new_id()


_WELCOME = """Welcome to Digital Human Factory: your account is ready.

Log in at {login}

If you did not sign up, ignore this mail: nothing happens without your identity check.
"""

_ALREADY = """Someone (maybe you) tried to create an account with this email address,
which already has one. Nothing was changed.

Log in at {login}
Forgot your password? Ask for a reset link at {forgot}
"""


CLOSED_MESSAGE = (
    "This account is closed by our trust & safety team. To appeal, use the form at "
    "/account/appeal with your email and password."
)


def _find(email: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.email) == email))


def _link(endpoint: str, **values: str) -> str:
    """An absolute link for a mail: under PUBLIC_URL when set (never the Host header)."""
    base = current_app.config["PUBLIC_URL"]
    if base:
        return base.rstrip("/") + url_for(endpoint, _external=None, **values)
    return url_for(endpoint, _external=True, **values)


def authenticate(email: str, password: str) -> User:
    """The user for these credentials, or Unauthorized (same message either way); a
    closed account gets 403 ``account_closed`` instead (R20)."""
    user = credentials(email, password)
    if user.sanction == Sanction.CLOSED:  # the right password, but no way in
        record_event(EventTag.AUTH_LOGIN_FAILED, actor_id=user.id, data={"closed": True})
        db.session.commit()
        raise Forbidden(CLOSED_MESSAGE, code="account_closed")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    record_event(EventTag.AUTH_LOGIN, actor_id=user.id)
    db.session.commit()
    return user


def credentials(email: str, password: str) -> User:
    """The user whose password this is, closed or not, or Unauthorized."""
    user = db.session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
        if user is None:
            raise VerificationError()
    except (VerificationError, InvalidHashError):
        record_event(EventTag.AUTH_LOGIN_FAILED, data={"user_known": user is not None})
        db.session.commit()
        raise Unauthorized("Wrong email or password.", code="bad_credentials") from None
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
    return token_row(token, now=now).user


def token_row(token: str, *, now: datetime | None = None) -> ApiToken:
    """The live token row for this bearer token, or Unauthorized."""
    now = now or utcnow()
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_sha256 == _digest(token)))
    if (
        row is None
        or row.revoked_at is not None
        or _aware(row.expires_at, now) <= now
        or row.user.sanction == Sanction.CLOSED
    ):
        raise Unauthorized(
            "This token is invalid or expired: create a new one at POST /api/v1/auth/tokens.",
            code="invalid_token",
        )
    row.last_used_at = now
    return row


def _aware(moment: datetime, now: datetime) -> datetime:
    return moment.replace(tzinfo=now.tzinfo) if moment.tzinfo is None else moment  # SQLite


def live_tokens(user: User) -> list[ApiToken]:
    now = utcnow()
    rows = db.session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at.desc())
    )
    return [row for row in rows if _aware(row.expires_at, now) > now]


def revoke_token(user: User, token_id: str) -> None:
    """Revoke one of the user's tokens (404 for another user's, as for every object)."""
    row = db.session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"No token with id {token_id}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        record_event(EventTag.AUTH_LOGOUT, actor_id=user.id, data={"token_revoked": row.id})
    db.session.commit()


def revoke_all_tokens(user_id: str, *, keep: str | None = None) -> int:
    result = db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None), ApiToken.id != (keep or "")
        )
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def change_password(
    user: User,
    current: str,
    new: str,
    *,
    keep_session: str | None = None,
    keep_token: str | None = None,
) -> None:
    """Check the current password, set the new one, and end every other session and token
    (the caller's own, named by ``keep_*``, stays)."""
    try:
        _hasher.verify(user.password_hash, current or "")
    except (VerificationError, InvalidHashError):
        raise Forbidden("Your current password is wrong.", code="wrong_password") from None
    check_password(new, user.email)
    _set_password(user, new, "password-changed", keep_session=keep_session, keep_token=keep_token)
    mail.send(user.email, "Your password was changed", _CHANGED.format(forgot=_link("auth.forgot")))


_CHANGED = """The password of your Digital Human Factory account was just changed, and every
other signed-in browser and API token was logged out.

Not you? Ask for a reset link at {forgot}
"""


def _set_password(user: User, password: str, reason: str, **keep: str | None) -> None:
    user.password_hash = _hasher.hash(password)
    ended = sessions.end_all(user.id, keep=keep.get("keep_session"))
    revoked = revoke_all_tokens(user.id, keep=keep.get("keep_token"))
    record_event(
        EventTag.AUTH_LOGOUT,
        actor_id=user.id,
        data={"reason": reason, "sessions": ended, "tokens": revoked},
    )
    db.session.commit()


def request_password_reset(email: str) -> None:
    """Mail a single-use, expiring reset link when the email has an account; silently
    nothing otherwise (the caller answers the same either way)."""
    user = _find((email or "").strip().lower())
    if user is None:
        return
    now = utcnow()
    db.session.execute(  # a new link supersedes older ones
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )
    token = secrets.token_urlsafe(32)
    ttl = int(current_app.config["PASSWORD_RESET_TTL_MINUTES"])
    db.session.add(
        PasswordResetToken(
            user_id=user.id, token_sha256=_digest(token), expires_at=now + timedelta(minutes=ttl)
        )
    )
    db.session.commit()
    mail.send(
        user.email,
        "Reset your Digital Human Factory password",
        _RESET.format(link=_link("auth.reset", token=token), minutes=ttl),
    )


_RESET = """Someone (we hope you) asked to reset the password of this account.

Choose a new password at {link}

The link works once, for {minutes} minutes. Setting a new password logs out every browser
and API token of the account. If you did not ask, ignore this mail: nothing changes.
"""

BAD_RESET_LINK = "This reset link is invalid, used or expired: ask for a new one."


def reset_row(token: str, *, now: datetime | None = None) -> PasswordResetToken:
    """The unused, unexpired reset row for this link token, or DomainError."""
    now = now or utcnow()
    row = db.session.scalar(
        select(PasswordResetToken).where(PasswordResetToken.token_sha256 == _digest(token or ""))
    )
    if row is None or row.used_at is not None or _aware(row.expires_at, now) <= now:
        raise DomainError(BAD_RESET_LINK, code="reset_link_invalid")
    return row


def reset_password(token: str, password: str, *, now: datetime | None = None) -> User:
    """Use a reset link once: set the password, end every session and token of the user."""
    row = reset_row(token, now=now)
    check_password(password, row.user.email)  # a weak choice does not burn the link
    claimed = db.session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now or utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]  # a concurrent use won
        db.session.rollback()
        raise DomainError(BAD_RESET_LINK, code="reset_link_invalid")
    user = row.user
    _set_password(user, password, "password-reset")
    return user
