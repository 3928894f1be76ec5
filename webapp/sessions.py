"""Server-side browser sessions: the signed cookie names a ``UserSession`` row, and
flask-login's user loader accepts the cookie only while that row is live.

Logging out ends the row, so a copy of the cookie taken before stops working; "log out
everywhere", a password change and a reset end all of a user's rows at once.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import current_app, session
from sqlalchemy import func, select, update

from .extensions import db
from .models import User, UserSession, utcnow

SESSION_KEY = "dhf_sid"


def start(user: User, user_agent: str | None) -> str:
    """A new live session for ``user``; its id goes into the cookie (``session[SESSION_KEY]``)."""
    sid = secrets.token_urlsafe(32)
    db.session.add(UserSession(id=sid, user_id=user.id, user_agent=(user_agent or "")[:200]))
    db.session.commit()
    session[SESSION_KEY] = sid
    return sid


def current_id() -> str | None:
    sid = session.get(SESSION_KEY)
    return sid if isinstance(sid, str) else None


def live_user(user_id: str) -> User | None:
    """The user of this request's cookie, if the session it names is still live."""
    sid = current_id()
    row = db.session.get(UserSession, sid) if sid else None
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return None
    if row.user.sanction == "closed":  # closing ends every session; this keeps it so
        return None
    now = utcnow()
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=now.tzinfo)
    if now - created > timedelta(days=int(current_app.config["SESSION_TTL_DAYS"])):
        return None
    return row.user


def end_current() -> None:
    sid = session.pop(SESSION_KEY, None)
    if sid:
        db.session.execute(
            update(UserSession)
            .where(UserSession.id == sid, UserSession.ended_at.is_(None))
            .values(ended_at=utcnow())
        )


def end_all(user_id: str, *, keep: str | None = None) -> int:
    """End every live session of the user but ``keep``; the caller commits."""
    result = db.session.execute(
        update(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.ended_at.is_(None),
            UserSession.id != (keep or ""),
        )
        .values(ended_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def live_count(user_id: str) -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(UserSession)
            .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        )
        or 0
    )
