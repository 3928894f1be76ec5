"""The moderator queue (R20, R21): open reports with what they resolve to, and the actions
a moderator takes on them, each with a stated reason, each audited.

Nobody acts on a report about their own account. ``take_down`` deletes the render's file
(the registry row stays, so verification answers ``taken_down``); ``freeze`` / ``unfreeze``
stop or allow every use of an avatar; ``sanction`` moves the account on the ladder (one
step, or to a given step, ``none`` lifting it). ``close`` decides the report with that
outcome; ``dismiss`` always decides it, and lifts a freeze this report itself made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, or_, select

from compliance.audit import EventTag

from .. import sanctions
from ..audit import record_event
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..models import (
    AuditEvent,
    Avatar,
    Render,
    RenderStatus,
    Report,
    ReportStatus,
    Sanction,
    Subject,
    User,
    utcnow,
)
from ..ownership import get_referenced
from ..storage import vault
from . import service

ACTIONS = ("dismiss", "take_down", "freeze", "unfreeze", "sanction")
MAX_REASON = 2000
TRAIL_LIMIT = 50


@dataclass(frozen=True)
class QueueItem:
    report: Report
    render: Render | None
    avatar: Avatar | None
    subject: Subject | None
    owner: User | None
    trail: list[AuditEvent]  # audit entries that mention the report, render or avatar


def queue() -> list[QueueItem]:
    """Open reports, highest priority first, then the earliest deadline."""
    reports = db.session.scalars(
        select(Report)
        .where(Report.status == ReportStatus.OPEN)
        .order_by(Report.priority.desc(), Report.due_by, Report.created_at)
    )
    return [_item(report) for report in reports]


def _item(report: Report) -> QueueItem:
    def get(model: type, key: str | None) -> Any:
        return db.session.get(model, key) if key else None

    return QueueItem(
        report,
        get(Render, report.render_id),
        get(Avatar, report.avatar_id),
        get(Subject, report.subject_id),
        get(User, report.owner_id),
        trail(report),
    )


def trail(report: Report) -> list[AuditEvent]:
    """The newest audit events naming the report, its render or its avatar (ids are
    random 32-hex strings, so a text match on the event data is exact enough)."""
    ids = [i for i in (report.id, report.render_id, report.avatar_id) if i]
    text = cast(AuditEvent.data, String)
    query = (
        select(AuditEvent)
        .where(or_(*(text.contains(i) for i in ids)))
        .order_by(AuditEvent.id.desc())
        .limit(TRAIL_LIMIT)
    )
    return list(db.session.scalars(query))


def act(
    report_id: str,
    admin: User,
    action: str,
    reason: str,
    *,
    step: str | None = None,
    close: bool = True,
) -> Report:
    """Apply one moderator action to what the report names; with ``close`` (always for
    ``dismiss``) the report is decided with that outcome and the owner is told."""
    report = db.session.get(Report, report_id)
    if report is None:
        raise NotFound(f"No report {report_id}.")
    if report.status != ReportStatus.OPEN:
        raise Conflict(f"Report {report.id} is already decided.", code="not_open")
    note = (reason or "").strip()
    if not note:
        raise InvalidInput("Give the reason for your decision.", code="reason_required")
    if len(note) > MAX_REASON:
        raise InvalidInput(f"The reason is limited to {MAX_REASON} characters.", code="too_long")
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}.", code="bad_action")
    if report.owner_id == admin.id:
        raise Forbidden(
            "Another moderator must decide reports about your own account.", code="own_check"
        )
    outcome = _ACTIONS[action](report, admin, note, step)
    if close or action == "dismiss":
        _decide(report, admin, outcome, note)
    db.session.commit()
    return report


def _dismiss(report: Report, admin: User, note: str, step: str | None) -> str:
    avatar = db.session.get(Avatar, report.avatar_id) if report.avatar_id else None
    if avatar is not None and avatar.frozen_reason == f"report {report.id}":
        _unfreeze(avatar, admin, f"report {report.id} dismissed: {note}", report)
    return "dismissed"


def _take_down(report: Report, admin: User, note: str, step: str | None) -> str:
    render = db.session.get(Render, report.render_id) if report.render_id else None
    if render is None:
        raise Conflict("This report names no render of ours to take down.", code="no_render")
    if render.status != RenderStatus.READY:
        raise Conflict(
            f"This render is {render.status}: there is no file to take down.", code="not_published"
        )
    avatar = get_referenced(Avatar, render.avatar_id)
    if render.output_blob_id:
        vault().delete(avatar.subject_id, render.output_blob_id)
    render.status, render.taken_down_at, render.output_blob_id = (
        RenderStatus.TAKEN_DOWN,
        utcnow(),
        None,
    )
    record_event(
        EventTag.RENDER_TAKEN_DOWN,
        actor_id=admin.id,
        data={
            "render": render.id,
            "content": render.content_id,
            "report": report.id,
            "reason": note,
        },
    )
    return "taken_down"


def _freeze(report: Report, admin: User, note: str, step: str | None) -> str:
    avatar = _avatar(report)
    if avatar.frozen_at is not None:
        raise Conflict("This avatar is already frozen.", code="already_frozen")
    avatar.frozen_at, avatar.frozen_reason = utcnow(), f"report {report.id}: {note}"
    record_event(
        EventTag.AVATAR_FROZEN,
        actor_id=admin.id,
        data={"avatar": avatar.id, "report": report.id, "reason": note},
    )
    return "frozen"


def _unfreeze_action(report: Report, admin: User, note: str, step: str | None) -> str:
    avatar = _avatar(report)
    if avatar.frozen_at is None:
        raise Conflict("This avatar is not frozen.", code="not_frozen")
    _unfreeze(avatar, admin, note, report)
    return "unfrozen"


def _unfreeze(avatar: Avatar, admin: User, note: str, report: Report) -> None:
    avatar.frozen_at = avatar.frozen_reason = None
    record_event(
        EventTag.AVATAR_UNFROZEN,
        actor_id=admin.id,
        data={"avatar": avatar.id, "report": report.id, "reason": note},
    )


def _avatar(report: Report) -> Avatar:
    avatar = db.session.get(Avatar, report.avatar_id) if report.avatar_id else None
    if avatar is None:
        raise Conflict("This report names no avatar of ours.", code="no_avatar")
    return avatar


def _sanction(report: Report, admin: User, note: str, step: str | None) -> str:
    owner = db.session.get(User, report.owner_id) if report.owner_id else None
    if owner is None:
        raise Conflict("This report names no account of ours.", code="no_account")
    target = sanctions.parse_step(step) if step else sanctions.next_step(owner.sanction)
    sanctions.apply(owner, target, note, admin.id, report.id)
    return "sanction_lifted" if target == Sanction.NONE else f"sanctioned_{target.value}"


_ACTIONS = {
    "dismiss": _dismiss,
    "take_down": _take_down,
    "freeze": _freeze,
    "unfreeze": _unfreeze_action,
    "sanction": _sanction,
}


def _decide(report: Report, admin: User, outcome: str, note: str) -> None:
    report.status, report.outcome, report.decision_note = ReportStatus.DECIDED, outcome, note
    report.decided_by, report.decided_at = admin.id, utcnow()
    record_event(
        EventTag.REPORT_DECIDED,
        actor_id=admin.id,
        data={"report": report.id, "outcome": outcome, "reason": note},
    )
    service.notify_decided(report)
