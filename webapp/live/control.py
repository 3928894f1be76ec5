"""Show control (issue 19): operator lines, the operator log and live-minute billing.

**Operator lines.** The operator (the room's owner, signed in, KYC verified: checked here,
whatever the client says) types a line during a show. It is an ordinary render of the
avatar (``studio.service.create_render``, purpose ``live_clip``): moderated, billed from
render credits, counted in the daily quota, rendered on the ``gpu`` queue, stamped with
every label but the audible notice (the show airs its own notice clip) and registered.
The show job splices it in at the next boundary once it is ready (``webapp.live.show``).

**The operator log.** Everything an operator does to a show, and what the show did about
it (a line aired, credits running low), is one :class:`LiveLogEntry` per event and the
same event in the audit chain, with the operator's user id as its actor.

**Live minutes.** :class:`ShowBilling` debits ``LIVE_MINUTE_CREDITS`` credit seconds per
started minute on air through the ledger, keyed by the show job and the minute, so a
restarted show job never pays a minute twice; it warns once the balance covers fewer than
``LIVE_LOW_CREDIT_MINUTES`` minutes, and asks the show to stop (``credits``) when the next
minute cannot be paid.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from compliance.audit import EventTag

from ..audit import record_event
from ..billing import ledger
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..models import (
    KycStatus,
    LiveLine,
    LiveLineStatus,
    LiveLogEntry,
    LiveRoom,
    LiveRoomStatus,
    Render,
    RenderStatus,
    User,
    utcnow,
)
from ..studio import service as studio

FAILED_RENDERS = (
    RenderStatus.FAILED,
    RenderStatus.QUARANTINED,
    RenderStatus.CANCELED,
    RenderStatus.TAKEN_DOWN,
)


def log(room: LiveRoom, tag: EventTag, actor_id: str | None = None, **data: Any) -> None:
    """One operator-log entry and the same audit event (the caller commits)."""
    record_event(tag, actor_id=actor_id, data={"room": room.id, **data})
    db.session.add(LiveLogEntry(room_id=room.id, actor_id=actor_id, tag=str(tag), data=data))


def operator_log(room: LiveRoom, limit: int = 200) -> list[dict[str, Any]]:
    rows = db.session.scalars(
        select(LiveLogEntry)
        .where(LiveLogEntry.room_id == room.id)
        .order_by(LiveLogEntry.id.desc())
        .limit(limit)
    )
    return [
        {"at": e.created_at.isoformat(), "actor_id": e.actor_id, "event": e.tag, **e.data}
        for e in rows
    ]


def require_operator(room: LiveRoom, user: User) -> None:
    """Only the room's owner drives its show, and only after passing KYC (a verified real
    person drives a virtual host)."""
    if user.id != room.owner_id:
        raise NotFound("No such live room.")
    if user.kyc_status != KycStatus.VERIFIED:
        raise Forbidden(
            "Verify your identity before you drive a live show: a real, verified person "
            "answers for what the avatar says.",
            code="kyc_required",
        )


# -- operator lines -------------------------------------------------------------------------


def add_line(room: LiveRoom, operator: User, raw: Any, *, enqueue: bool = True) -> LiveLine:
    """Moderate the line and render it (gpu queue, billed); the show airs it when ready."""
    require_operator(room, operator)
    if room.status != LiveRoomStatus.LIVE:
        raise Conflict("This show is not live: lines are typed during the show.", code="not_live")
    limit = int(current_app.config["LIVE_MAX_LINE_CHARS"])
    text = " ".join(raw.split()) if isinstance(raw, str) else ""
    if not text:
        raise InvalidInput("Type the line the avatar should say.", code="missing_fields")
    if len(text) > limit:
        raise InvalidInput(f"A line is limited to {limit} characters.", code="too_long")
    try:
        render = studio.create_render(
            operator, room.avatar_id, text, {}, enqueue=enqueue, purpose="live_clip"
        )
    except InvalidInput as exc:
        if exc.code.startswith("moderation_"):
            log(room, EventTag.LIVE_LINE, operator.id, status="rejected", code=exc.code)
            db.session.commit()
        raise
    line = LiveLine(room_id=room.id, operator_id=operator.id, text=text, render_id=render.id)
    db.session.add(line)
    db.session.flush()
    log(room, EventTag.LIVE_LINE, operator.id, line=line.id, render=render.id, status="rendering")
    db.session.commit()
    return line


def lines(room: LiveRoom, limit: int = 100) -> list[LiveLine]:
    return list(
        db.session.scalars(
            select(LiveLine)
            .where(LiveLine.room_id == room.id)
            .order_by(LiveLine.created_at.desc())
            .limit(limit)
        )
    )


def _ready_estimate(line: LiveLine, render: Render | None) -> datetime | None:
    """When a rendering line's clip should be ready: the render's run takes about
    ``LIVE_RENDER_FACTOR`` times the clip's length, from when its job started (or now)."""
    if render is None or render.status in FAILED_RENDERS:
        return None
    job = studio.latest_job(render.id, "render")
    factor = float(current_app.config["LIVE_RENDER_FACTOR"])
    run_s = factor * studio.estimate_seconds(line.text)
    now = utcnow()
    if job is None or job.started_at is None:  # still waiting for a gpu worker
        return now + timedelta(seconds=run_s)
    began = job.started_at
    if began.tzinfo is None:  # SQLite hands back naive UTC
        began = began.replace(tzinfo=now.tzinfo)
    return max(now, began + timedelta(seconds=run_s))


def line_json(line: LiveLine) -> dict[str, Any]:
    """A line as the console shows it: its state and when it should air. A rendering line
    airs at the first boundary after its clip is ready (``airs_after``); a queued one has
    the show's own estimate (``airs_at``: the clip on air and those spliced before it)."""
    render = db.session.get(Render, line.render_id) if line.render_id else None
    after = _ready_estimate(line, render) if line.status == LiveLineStatus.RENDERING else None
    when = line.aired_at if line.status == LiveLineStatus.AIRED else line.airs_at
    return {
        "id": line.id,
        "text": line.text,
        "operator_id": line.operator_id,
        "status": line.status,
        "render_id": line.render_id,
        "render_status": render.status if render else None,
        "created_at": line.created_at.isoformat(),
        "airs_after": after.isoformat() if after else None,
        "airs_at": when.isoformat() if when and line.status != LiveLineStatus.FAILED else None,
        "aired_at": line.aired_at.isoformat() if line.aired_at else None,
    }


# -- live minutes ---------------------------------------------------------------------------


def minute_price() -> int:
    return int(current_app.config["LIVE_MINUTE_CREDITS"])


def require_first_minute(room: LiveRoom) -> None:
    """A show cannot start without credits for its first minute (402)."""
    have, price = ledger.balance(room.owner_id), minute_price()
    if have < price:
        raise ledger.InsufficientCredits(
            f"A live minute costs {price} s of credits and you have {max(have, 0)} s: buy "
            "credits before going live."
        )


def credits_json(room: LiveRoom) -> dict[str, Any]:
    """The operator's view of the balance: how many live minutes it still covers."""
    have, price = ledger.balance(room.owner_id), minute_price()
    minutes = have // price if price > 0 else None
    low = minutes is not None and minutes < int(current_app.config["LIVE_LOW_CREDIT_MINUTES"])
    return {"balance_s": have, "minute_credits": price, "minutes_left": minutes, "low": low}


class ShowBilling:
    """The show job's meter: every started minute on air is paid before it plays on."""

    def __init__(self, room: LiveRoom, job_id: str):
        self.room, self.job_id = room, job_id
        self.price = minute_price()
        self.low_minutes = int(current_app.config["LIVE_LOW_CREDIT_MINUTES"])
        self.next_minute = 0  # the first minute not paid yet
        self.warned = False

    def tick(self, on_air_s: float) -> str | None:
        """Pay every minute started by ``on_air_s`` of stream time; ``"credits"`` when the
        balance cannot pay the next one (the show then stops cleanly)."""
        if self.price <= 0:
            return None
        while self.next_minute <= int(on_air_s // 60):
            key = f"{self.job_id}:{self.next_minute}"
            paid = ledger.charge_live(self.room.owner_id, key, self.price)
            if paid == "short":
                return "credits"
            self.next_minute += 1
            if paid == "charged":
                self._warn_when_low()
        return None

    def _warn_when_low(self) -> None:
        have = ledger.balance(self.room.owner_id)
        if self.warned or have >= self.low_minutes * self.price:
            return
        self.warned = True
        log(
            self.room,
            EventTag.LIVE_CREDITS_LOW,
            None,
            balance_s=have,
            minutes_left=have // self.price,
            minutes_paid=self.next_minute,
        )
