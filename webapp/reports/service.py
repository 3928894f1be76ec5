"""Public reports and appeals (R20, R21): opening one, following it, telling the owner.

Anyone may report a video without an account: a file (checked by the bounded public
verifier, the same limits as ``POST /api/v1/verify``), a content id, or a link. The server
resolves what it can to a render, avatar, subject and account; a ``not_me`` report that
resolves freezes the avatar at once. The reporter gets a ticket id, a secret status link
(only its SHA-256 is stored) and the deadline. The reporter's words and contact are never
shown to the account holder, and stay out of the append-only audit log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from flask import current_app, url_for
from sqlalchemy import select

from compliance.audit import EventTag

from .. import mail, registry, webhooks
from ..accounts import normalise_email
from ..audit import record_event
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..models import (
    Avatar,
    ContentRecord,
    Report,
    ReportCategory,
    ReportStatus,
    Sanction,
    Subject,
    User,
    utcnow,
)
from ..storage import vault

PUBLIC_CATEGORIES = (
    ReportCategory.NOT_ME,
    ReportCategory.FRAUD,
    ReportCategory.HARMFUL,
    ReportCategory.OTHER,
)
CATEGORY_LABELS = {
    ReportCategory.NOT_ME: "It's me, and I did not consent",
    ReportCategory.FRAUD: "Fraud or scam",
    ReportCategory.HARMFUL: "Harmful or abusive content",
    ReportCategory.OTHER: "Something else",
    ReportCategory.APPEAL: "Appeal of a sanction",
}
# what the reporter reads on the status page for each outcome
OUTCOME_TEXT = {
    "dismissed": "A moderator reviewed the report and took no action.",
    "taken_down": "The video was taken down.",
    "frozen": "The avatar shown in the video is frozen: it cannot be used.",
    "unfrozen": "A moderator reviewed the report; the avatar may be used again.",
    "sanctioned": "The account that made the video was sanctioned.",
    "sanction_lifted": "The sanction was lifted.",
}


def outcome_text(outcome: str | None) -> str | None:
    """The reporter's sentence for an outcome (``sanctioned_<step>`` reads as sanctioned;
    on an appeal the step is the appellant's own, so it is named)."""
    if outcome and outcome.startswith("sanctioned_"):
        step = outcome.removeprefix("sanctioned_")
        return f"{OUTCOME_TEXT['sanctioned']} Step: {step}."
    return OUTCOME_TEXT.get(outcome or "")


_CONTENT_ID = re.compile(r"[0-9a-f]{32}")
_LINK = re.compile(r"https?://[^\s]{1,490}", re.IGNORECASE)
MAX_LINK = 500


@dataclass(frozen=True)
class Opened:
    report: Report
    token: str  # the secret of the status link; shown once, only its SHA-256 is kept
    frozen: bool  # a not_me report froze the avatar


def _utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back naive; every one we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    return _utc(moment).isoformat() if moment else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _text(value: str | None, field: str, required: bool = False) -> str:
    text = (value or "").strip()
    limit = int(current_app.config["REPORT_MAX_CHARS"])
    if required and not text:
        raise InvalidInput(f"Describe the problem in '{field}'.", code="missing_fields")
    if len(text) > limit:
        raise InvalidInput(f"{field} is limited to {limit} characters.", code="too_long")
    return text


def _category(value: str | None, allowed: tuple[ReportCategory, ...]) -> ReportCategory:
    if value not in [c.value for c in allowed]:
        names = ", ".join(c.value for c in allowed)
        raise InvalidInput(f"category must be one of {names}.", code="bad_category")
    return ReportCategory(value)


def _link(value: str | None) -> str | None:
    link = (value or "").strip()
    if not link:
        return None
    if len(link) > MAX_LINK or not _LINK.fullmatch(link):
        raise InvalidInput(
            f"link must be an http(s) address of at most {MAX_LINK} characters.", code="bad_link"
        )
    return link


def _content_id(value: str | None) -> str | None:
    content_id = (value or "").strip().lower()
    if not content_id:
        return None
    if not _CONTENT_ID.fullmatch(content_id):
        raise InvalidInput(
            "content_id is the 32-character id the verify page shows.", code="bad_content_id"
        )
    return content_id


def _due(category: ReportCategory) -> timedelta:
    cfg = current_app.config
    hours = cfg[
        "REPORT_DUE_HOURS_NOT_ME" if category == ReportCategory.NOT_ME else "REPORT_DUE_HOURS"
    ]
    return timedelta(hours=float(hours))


def _priority(category: ReportCategory, resolved: bool) -> int:
    """Higher first: someone depicted without consent on our content comes first."""
    if category == ReportCategory.NOT_ME:
        return 3 if resolved else 2
    return (
        1
        if category in (ReportCategory.FRAUD, ReportCategory.HARMFUL, ReportCategory.APPEAL)
        else 0
    )


def _summary(body: dict[str, Any]) -> dict[str, Any]:
    """What the moderator needs of the verifier's answer."""
    mark, c2pa = body["watermark"], body.get("c2pa") or {}
    return {
        "by": "file",
        "verdict": body["verdict"],
        "c2pa_state": c2pa.get("state"),
        "watermark_found": mark["found"],
        "watermark_confidence": mark["confidence"],
        "watermark_p_value": mark["p_value"],
        "content_id": (body.get("content") or {}).get("content_id"),
    }


def _resolve(
    file: tuple[BinaryIO, str] | None, content_id: str | None
) -> tuple[ContentRecord | None, dict[str, Any]]:
    """The registry row the file's marks or the given content id lead to, and how."""
    if file is not None:
        body = registry.verify_stream(file[0], file[1])
        row = registry.lookup(body["content"]["content_id"], None) if body["content"] else None
        return row, _summary(body)
    row = registry.lookup(content_id, None)
    return row, {"by": "content_id", "content_id": content_id, "found": row is not None}


def open_report(
    *,
    category: str | None,
    reason: str | None,
    contact: str | None = None,
    link: str | None = None,
    content_id: str | None = None,
    file: tuple[BinaryIO, str] | None = None,
) -> Opened:
    """Open a public report; the verifier runs on ``file`` (stream, filename)."""
    kind = _category(category, PUBLIC_CATEGORIES)
    text = _text(reason, "reason", required=True)
    email = normalise_email(contact) if contact is not None and contact.strip() else None
    where, given_id = _link(link), _content_id(content_id)
    if file is None and given_id is None and where is None:
        raise InvalidInput(
            "Attach the video, or give its content id or a link to where you saw it.",
            code="nothing_to_report",
        )
    row, verification = _resolve(file, given_id)
    token = secrets.token_urlsafe(32)
    report = Report(
        category=kind,
        source="public",
        priority=_priority(kind, row is not None),
        reason=text,
        contact=email,
        link=where,
        verification=verification,
        status_token_sha256=_digest(token),
        due_by=utcnow() + _due(kind),
    )
    if row is not None:
        report.content_id, report.render_id = row.content_id, row.render_id
        report.avatar_id, report.subject_id = row.avatar_id, row.subject_id
        report.owner_id = row.owner_id
    db.session.add(report)
    db.session.flush()
    if file is not None and row is not None:  # evidence about our content; else not kept
        file[0].seek(0)
        report.attachment_blob_id = vault().put(attachment_owner(report), file[0])[0]
    frozen = kind == ReportCategory.NOT_ME and freeze_for(report)
    record_event(EventTag.REPORT_OPENED, data=_audit_data(report, frozen))
    announce_opened(report, frozen)
    db.session.commit()
    return Opened(report, token, frozen)


def attachment_owner(report: Report) -> str:
    """The vault key owner of a report's attachment: shredding it deletes just that file."""
    return f"report-{report.id}"


def freeze_for(report: Report) -> bool:
    """Freeze the avatar a not_me report resolves to, until a moderator decides."""
    avatar = db.session.get(Avatar, report.avatar_id) if report.avatar_id else None
    if avatar is None or avatar.frozen_at is not None:
        return False
    avatar.frozen_at, avatar.frozen_reason = utcnow(), f"report {report.id}"
    record_event(
        EventTag.AVATAR_FROZEN,
        data={"avatar": avatar.id, "report": report.id, "reason": avatar.frozen_reason},
    )
    return True


def _audit_data(report: Report, frozen: bool) -> dict[str, Any]:
    return {
        "report": report.id,
        "category": report.category.value,
        "source": report.source,
        "resolved": report.content_id is not None,
        "content": report.content_id,
        "render": report.render_id,
        "avatar": report.avatar_id,
        "user": report.owner_id,
        "avatar_frozen": frozen,
    }


def _tell_owner(report: Report, event: str, **extra: Any) -> None:
    """Webhook (after the commit) and mail to the account holder; never the reporter's
    words or contact."""
    owner = db.session.get(User, report.owner_id)
    if owner is None:
        return
    data = {
        "report_id": report.id,
        "category": report.category.value,
        "status": report.status.value,
        "content_id": report.content_id,
        "render_id": report.render_id,
        "avatar_id": report.avatar_id,
        "due_by": iso(report.due_by),
        "outcome": report.outcome,
        **extra,
    }
    webhooks.notify(owner.id, event, data)
    mail.send(owner.email, *_owner_mail(report, event, extra))


def _owner_mail(report: Report, event: str, extra: dict[str, Any]) -> tuple[str, str]:
    what = CATEGORY_LABELS[report.category]
    target = f"content {report.content_id}" if report.content_id else "your account"
    if event == "report.opened":
        frozen = (
            "\nThe avatar is frozen until a moderator decides."
            if extra.get("avatar_frozen")
            else ""
        )
        return (
            f"A report about {target} (ticket {report.id})",
            f"Someone reported {target} ({what}). Our trust & safety team will review it "
            f"by {_utc(report.due_by):%Y-%m-%d %H:%M} UTC.{frozen}\n",
        )
    outcome = report.outcome or "decided"
    note = report.decision_note or ""
    return (
        f"Report {report.id}: {outcome}",
        f"Our trust & safety team decided the report about {target} ({what}): {outcome}.\n"
        f"Reason: {note}\n",
    )


def announce_opened(report: Report, frozen: bool) -> None:
    """Tell the account holder (webhook, mail) and the depicted person (mail, when an
    address is on file) that a report about their content was opened."""
    if report.owner_id:
        _tell_owner(report, "report.opened", avatar_frozen=frozen)
    _tell_depicted(report, "report.opened")


def notify_decided(report: Report) -> None:
    if report.owner_id:
        _tell_owner(report, "report.decided")
    _tell_depicted(report, "report.decided")


def _tell_depicted(report: Report, event: str) -> None:
    """The person whose likeness it is hears of reports on it too (their portal address;
    a "self" subject is the account holder, already told)."""
    subject = db.session.get(Subject, report.subject_id) if report.subject_id else None
    if subject is None or not subject.contact_email:
        return
    what = CATEGORY_LABELS[report.category]
    if event == "report.opened":
        title = f"A report about a video of you (ticket {report.id})"
        body = (
            f"A report was opened about a video made with your likeness ({what}). "
            f"Our trust & safety team will review it by {_utc(report.due_by):%Y-%m-%d %H:%M} "
            "UTC. You can see every use of your likeness from your consent link.\n"
        )
    else:
        title = f"Report {report.id}: {report.outcome or 'decided'}"
        body = (
            f"Our trust & safety team decided the report about a video made with your "
            f"likeness ({what}): {outcome_text(report.outcome) or report.outcome}.\n"
        )
    mail.send(subject.contact_email, title, body)


def by_token(token: str) -> Report:
    report = db.session.scalar(select(Report).where(Report.status_token_sha256 == _digest(token)))
    if report is None:
        raise NotFound("No report has this status link: check that you copied all of it.")
    return report


def status_json(report: Report) -> dict[str, Any]:
    """What the reporter sees: the ticket, the deadline and the outcome."""
    decided = report.status == ReportStatus.DECIDED
    return {
        "ticket_id": report.id,
        "category": report.category.value,
        "status": report.status.value,
        "created_at": iso(report.created_at),
        "due_by": iso(report.due_by),
        "resolved": report.content_id is not None or report.category == ReportCategory.APPEAL,
        "content_id": report.content_id,
        "outcome": report.outcome if decided else None,
        "outcome_text": outcome_text(report.outcome) if decided else None,
        "decided_at": iso(report.decided_at),
    }


def opened_json(opened: Opened) -> dict[str, Any]:
    """The answer to a new report: ticket, secret status link, deadline, what we found."""
    report = opened.report
    body = status_json(report)
    body["status_token"] = opened.token
    body["status_url"] = url_for("reports.status_page", token=opened.token, _external=True)
    body["attachment_kept"] = report.attachment_blob_id is not None
    body["avatar_frozen"] = opened.frozen
    body["message"] = opened_message(opened)
    return body


def opened_message(opened: Opened) -> str:
    report = opened.report
    due = f"{_utc(report.due_by):%Y-%m-%d %H:%M} UTC"
    if report.category == ReportCategory.APPEAL:
        return f"Your appeal is ticket {report.id}. A moderator will answer by {due}."
    if report.content_id is None:
        return (
            f"Not ours: we found no mark of Digital Human Factory and no record of this "
            f"content, so we cannot act on the video itself. Your report is ticket {report.id}; "
            f"a moderator will still read it by {due}."
        )
    frozen = " Its avatar is frozen until a moderator decides." if opened.frozen else ""
    return (
        f"This video was made with Digital Human Factory (content id {report.content_id}).{frozen} "
        f"Your report is ticket {report.id}; a moderator will answer by {due}."
    )


# -- appeals ------------------------------------------------------------------------------


def open_appeal(user: User, reason: str | None) -> Opened:
    """An account holder's appeal of their sanction: a report in the same queue."""
    if user.sanction == Sanction.NONE:
        raise Conflict("Your account has no sanction to appeal.", code="nothing_to_appeal")
    text = _text(reason, "reason", required=True)
    pending = db.session.scalar(
        select(Report.id).where(
            Report.owner_id == user.id,
            Report.category == ReportCategory.APPEAL,
            Report.status == ReportStatus.OPEN,
        )
    )
    if pending:
        raise Conflict(
            f"Your appeal {pending} is still open: wait for its answer.", code="appeal_open"
        )
    token = secrets.token_urlsafe(32)
    report = Report(
        category=ReportCategory.APPEAL,
        source="appeal",
        priority=_priority(ReportCategory.APPEAL, True),
        reason=text,
        contact=user.email,
        owner_id=user.id,
        verification={"sanction": user.sanction.value, "sanction_reason": user.sanction_reason},
        status_token_sha256=_digest(token),
        due_by=utcnow() + _due(ReportCategory.APPEAL),
    )
    db.session.add(report)
    db.session.flush()
    record_event(EventTag.REPORT_OPENED, actor_id=user.id, data=_audit_data(report, False))
    db.session.commit()
    return Opened(report, token, False)
