"""The depicted person's portal: entry by one-time code, the list of uses, flags.

Entry. The person opens the consent link they already have (it names their consent
record) and asks for a one-time code. The code goes by e-mail to the subject's contact
address: the ``contact_email`` the account holder gave with the link, or, for a "self"
subject (the account holder is the person), the account's own address. Without one the
portal cannot be entered (409 ``no_contact``) until the account holder adds it. The code
has 8 digits, works once for ``PORTAL_CODE_TTL_MINUTES``, is stored only as an HMAC under
the app's secret key, takes ``PORTAL_CODE_ATTEMPTS`` wrong guesses, and a new one voids
the older ones; a link gets at most ``PORTAL_CODES_PER_HOUR`` codes (429).

The link alone still withdraws consent (the consent page); the code adds a second
factor (the mailbox) before anyone sees the list or downloads a file.

Grant. A right code starts a :class:`PortalSession` row (``PORTAL_SESSION_MINUTES``); the
browser keeps only a random token whose SHA-256 names the row, and every request checks
that the row is live and belongs to the same subject as the link.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult

from compliance.audit import EventTag

from .. import mail
from ..audit import record_event
from ..errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unauthorized
from ..extensions import db
from ..models import (
    AuditEvent,
    Avatar,
    ConsentRecord,
    Job,
    JobStatus,
    PortalCode,
    PortalSession,
    Render,
    RenderStatus,
    Report,
    ReportCategory,
    ReportStatus,
    Subject,
    User,
    utcnow,
)
from ..ownership import get_referenced
from ..reports import service as reports

CODE_DIGITS = 8
FLAG_PRIORITY = 10  # above every public report (0): the depicted person says it is not them
FLAG_SOURCE = "portal"
REASON_MAX = 2000
_DOWNLOAD_SALT = "dhf-portal-download"


class TooManyCodes(DomainError):
    status, code = 429, "too_many_codes"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _code_mac(code: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, b"portal-code:" + code.encode(), hashlib.sha256).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def _setting(name: str) -> int:
    return int(current_app.config[name])


# -- entry ------------------------------------------------------------------------------


def contact_for(subject: Subject) -> str | None:
    """Where the subject's codes go: their own address, else (a "self" subject) the
    account's; None when nobody gave one."""
    if subject.contact_email:
        return subject.contact_email
    if subject.relation == "self":
        owner = db.session.get(User, subject.owner_id)
        return owner.email if owner else None
    return None


def masked(address: str) -> str:
    """``a•••@example.com``: enough for the person to recognise their own address."""
    name, _, domain = address.partition("@")
    return f"{name[:1]}•••@{domain}"


def send_code(record: ConsentRecord, now: datetime | None = None) -> PortalCode:
    """Mail a fresh one-time code for this link's subject (older codes stop working)."""
    now = _aware(now or utcnow())
    subject = get_referenced(Subject, record.subject_id)
    to = contact_for(subject)
    if to is None:
        raise Conflict(
            "No e-mail address is on file for you, so we cannot send a code: ask the "
            "account holder to add your address, then try again.",
            code="no_contact",
        )
    recent = select(func.count()).where(
        PortalCode.consent_record_id == record.id, PortalCode.created_at > now - timedelta(hours=1)
    )
    if (db.session.scalar(recent) or 0) >= _setting("PORTAL_CODES_PER_HOUR"):
        raise TooManyCodes(
            "Too many codes were sent for this link in the last hour: use the "
            "latest one, or try again later."
        )
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    ttl = _setting("PORTAL_CODE_TTL_MINUTES")
    row = PortalCode(
        subject_id=subject.id,
        consent_record_id=record.id,
        code_mac=_code_mac(code),
        sent_to=to,
        created_at=now,
        expires_at=now + timedelta(minutes=ttl),
    )
    db.session.add(row)
    record_event(EventTag.PORTAL_CODE_SENT, data={"subject": subject.id, "to": masked(to)})
    db.session.commit()
    mail.send(
        to,
        "Your code to see how your likeness is used",
        f"Your one-time code is {code}. It works once, for {ttl} minutes.\n\n"
        "Enter it on the page that asked for it. If you did not ask for it, ignore "
        "this mail: nobody can enter without the code.",
    )
    return row


def enter(record: ConsentRecord, code: str, now: datetime | None = None) -> str:
    """Check the code; on success a portal session token (for the browser's cookie)."""
    now = _aware(now or utcnow())
    latest = db.session.scalar(
        select(PortalCode)
        .where(PortalCode.consent_record_id == record.id)
        .order_by(PortalCode.created_at.desc())
        .limit(1)
    )
    if latest is None or latest.used_at is not None or _aware(latest.expires_at) <= now:
        raise Forbidden("This code is no longer valid: ask for a new one.", code="code_expired")
    limit = _setting("PORTAL_CODE_ATTEMPTS")
    if latest.attempts >= limit:
        raise Forbidden("Too many wrong codes: ask for a new one.", code="code_locked")
    if not hmac.compare_digest(_code_mac(code.strip()), latest.code_mac):
        left = max(limit - latest.attempts - 1, 0)
        db.session.execute(
            update(PortalCode)
            .where(PortalCode.id == latest.id)
            .values(attempts=PortalCode.attempts + 1)
        )
        db.session.commit()
        raise Forbidden(f"This code is not right: {left} tries left.", code="bad_code")
    used: CursorResult[Any] = db.session.execute(
        update(PortalCode)
        .where(PortalCode.id == latest.id, PortalCode.used_at.is_(None))
        .values(used_at=now)
    )  # type: ignore[assignment]
    if used.rowcount != 1:  # a concurrent request used it first
        db.session.rollback()
        raise Forbidden("This code is no longer valid: ask for a new one.", code="code_expired")
    token = secrets.token_urlsafe(32)
    minutes = _setting("PORTAL_SESSION_MINUTES")
    db.session.add(
        PortalSession(
            token_sha256=_digest(token),
            subject_id=record.subject_id,
            consent_record_id=record.id,
            created_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )
    )
    record_event(EventTag.PORTAL_OPENED, data={"subject": record.subject_id})
    db.session.commit()
    return token


def grant(record: ConsentRecord, token: str | None, now: datetime | None = None) -> PortalSession:
    """The live portal session of this link's subject, else 401 ``portal_code_required``."""
    now = _aware(now or utcnow())
    row = (
        db.session.scalar(select(PortalSession).where(PortalSession.token_sha256 == _digest(token)))
        if token
        else None
    )
    if (
        row is None
        or row.ended_at is not None
        or _aware(row.expires_at) <= now
        or row.subject_id != record.subject_id
    ):
        raise Unauthorized(
            "Enter the code we mail you to see how your likeness is used.",
            code="portal_code_required",
        )
    return row


def leave(session_row: PortalSession) -> None:
    session_row.ended_at = utcnow()
    db.session.commit()


# -- the list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Use:
    """One render made with a subject's likeness, as the person and the owner see it."""

    id: str
    avatar_id: str
    avatar_name: str
    created_at: datetime
    duration_s: float | None  # of the published file; None before (or without) one
    script: str
    status: str  # incl. taken_down and quarantined
    content_id: str | None
    verify_lookups: int  # public verifications that resolved to this file
    report_open: bool  # a report (e.g. the person's flag) waits for a moderator
    file_deleted: bool  # deleted under the retention schedule (R24)
    downloadable: bool

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        return out


def verify_lookups(content_ids: list[str]) -> dict[str, int]:
    """How many verification requests (audit ``verify:request``) resolved to each id."""
    if not content_ids:
        return {}
    key = AuditEvent.data["content_id"].as_string()
    query = (
        select(key, func.count())
        .where(AuditEvent.tag == str(EventTag.VERIFY_REQUEST), key.in_(content_ids))
        .group_by(key)
    )
    return {str(cid): int(n) for cid, n in db.session.execute(query)}


def _durations(render_ids: list[str]) -> dict[str, float]:
    query = select(Job.target_id, Job.result).where(
        Job.kind == "render", Job.status == JobStatus.FINISHED, Job.target_id.in_(render_ids)
    )
    return {
        rid: float(r["duration_s"])
        for rid, r in db.session.execute(query)
        if isinstance(r, dict) and r.get("duration_s") is not None
    }


def _open_reports(render_ids: list[str]) -> set[str]:
    query = select(Report.render_id).where(
        Report.status == ReportStatus.OPEN, Report.render_id.in_(render_ids)
    )
    return {rid for rid in db.session.scalars(query) if rid}


def uses(subject: Subject) -> list[Use]:
    """Every render made with this subject's likeness, across all of their avatars."""
    query = (
        select(Render, Avatar.name)
        .join(Avatar, Render.avatar_id == Avatar.id)
        .where(Avatar.subject_id == subject.id)
        .order_by(Render.created_at.desc())
    )
    rows = list(db.session.execute(query))
    ids = [r.id for r, _ in rows]
    durations, reported = _durations(ids), _open_reports(ids)
    lookups = verify_lookups([r.content_id for r, _ in rows if r.content_id])
    readable = subject.key_destroyed_at is None
    return [
        Use(
            r.id,
            r.avatar_id,
            name,
            r.created_at,
            durations.get(r.id),
            r.script,
            r.status,
            r.content_id,
            lookups.get(r.content_id or "", 0),
            r.id in reported,
            r.purged_at is not None,
            readable
            and r.status == RenderStatus.READY
            and bool(r.output_blob_id)
            and r.purged_at is None,
        )
        for r, name in rows
    ]


def render_of(subject_id: str, render_id: str) -> Render:
    """A render of this subject's likeness; 404 for any other id (never 403)."""
    render = db.session.get(Render, render_id)
    avatar = db.session.get(Avatar, render.avatar_id) if render else None
    if render is None or avatar is None or avatar.subject_id != subject_id:
        raise NotFound(f"No render with id {render_id}.")
    return render


# -- downloads --------------------------------------------------------------------------


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_DOWNLOAD_SALT)


def download_token(render_id: str, subject_id: str) -> str:
    return _signer().dumps({"render": render_id, "subject": subject_id})


def check_download(token: str, render_id: str, subject_id: str) -> None:
    """The signed link must be fresh and name this render of this subject."""
    try:
        data = _signer().loads(token, max_age=_setting("PORTAL_DOWNLOAD_TTL"))
    except SignatureExpired:
        raise Forbidden(
            "This download link expired: reload the page for a new one.", code="link_expired"
        ) from None
    except BadSignature:
        raise Forbidden("This download link is not valid.", code="bad_link") from None
    if data.get("render") != render_id or data.get("subject") != subject_id:
        raise Forbidden("This download link is not valid.", code="bad_link")


# -- flags ------------------------------------------------------------------------------


def open_flag(render: Render, reason: str, *, source: str = FLAG_SOURCE) -> Report:
    """ "I did not say this": a high-priority ``not_me`` report on one render (R21).

    While open it is a legal hold on the render, its avatar and subject (retention)."""
    reason = (reason or "").strip() or "I did not say this."
    if len(reason) > REASON_MAX:
        raise InvalidInput(f"Say it in at most {REASON_MAX} characters.", code="reason_too_long")
    already = select(Report.id).where(
        Report.render_id == render.id, Report.source == source, Report.status == ReportStatus.OPEN
    )
    if db.session.scalar(already.limit(1)):
        raise Conflict(
            "You already flagged this video: our team is looking at it.", code="already_flagged"
        )
    avatar = get_referenced(Avatar, render.avatar_id)
    due = utcnow() + timedelta(hours=_setting("PORTAL_FLAG_DUE_HOURS"))
    report = Report(
        category=ReportCategory.NOT_ME,
        source=source,
        priority=FLAG_PRIORITY,
        reason=reason,
        content_id=render.content_id,
        render_id=render.id,
        avatar_id=avatar.id,
        subject_id=avatar.subject_id,
        owner_id=render.owner_id,
        due_by=due,
    )
    db.session.add(report)
    db.session.flush()
    frozen = reports.freeze_for(report)  # the person themself says so: frozen until reviewed
    record_event(
        EventTag.REPORT_OPENED,
        data={
            "report": report.id,
            "category": "not_me",
            "source": source,
            "render": render.id,
            "subject": avatar.subject_id,
            "avatar_frozen": frozen,
        },
    )
    reports.announce_opened(report, frozen)
    db.session.commit()
    return report
