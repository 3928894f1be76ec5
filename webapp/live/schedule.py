"""Shows that start themselves at ``starts_at``.

Saving a room with a start time puts one ``autostart`` call into RQ's scheduled registry
on the ``cpu`` queue (``dhf worker`` runs the scheduler, as for the retention schedule),
under a job id made of the room and the time, so saving twice schedules once; a room
whose time was changed or cleared meanwhile ignores the old call. At the time:

- the room is ready (idle clip and first segment rendered): it goes live through
  ``service.start`` with its owner as the operator (the audit says it was the schedule);
- its clips are still rendering: ``waiting``; it is checked again every
  ``RETRY_S`` and goes live as soon as it is ready, up to ``LIVE_SCHEDULE_GRACE_S``
  after ``starts_at``; then ``missed`` (it never starts late by surprise);
- the start is refused (the likeness gate, a suspended account, an unsafe output):
  ``refused``, with the server's message in ``schedule_note``.

The state (``schedule_state``, ``schedule_note``) is in the API and on the room page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from rq.exceptions import DuplicateJobError

from .. import queue as q
from ..errors import DomainError
from ..extensions import db
from ..models import LiveRoom, LiveRoomStatus, User, utcnow
from ..ownership import get_referenced

JOB_PREFIX = "live-start-"
RETRY_S = 10.0  # how often a waiting room is checked again


def job_id(room_id: str, at: datetime, attempt: int = 0) -> str:
    return f"{JOB_PREFIX}{room_id}-{at.astimezone(UTC):%Y%m%dT%H%M%S}-{attempt}"


def arm(room: LiveRoom, connection: Any = None) -> str | None:
    """Schedule the room's start (the caller has committed ``starts_at``); the job id, or
    None when there is nothing to schedule or it is scheduled already."""
    from ..jobs import redis

    if room.starts_at is None or room.status == LiveRoomStatus.LIVE:
        room.schedule_state = room.schedule_note = None
        db.session.commit()
        return None
    at = _aware(room.starts_at)
    room.schedule_state, room.schedule_note = "scheduled", None
    db.session.commit()
    return _enqueue(connection or redis(), room.id, at, at, 0)


def _enqueue(
    connection: Any, room_id: str, at: datetime, when: datetime, attempt: int
) -> str | None:
    try:
        q.queue("cpu", connection).enqueue_at(
            when,
            autostart,
            room_id,
            at.isoformat(),
            attempt,
            job_id=job_id(room_id, at, attempt),
            unique=True,
            job_timeout=120,
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
        )
    except DuplicateJobError:
        return None
    return job_id(room_id, at, attempt)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # SQLite drops the zone


def autostart(room_id: str, at_iso: str, attempt: int = 0) -> str:
    """The RQ entry point at ``starts_at`` (and every ``RETRY_S`` while waiting); returns
    the state it left the room in."""
    from ..jobs import app

    with app().app_context():
        return check(room_id, datetime.fromisoformat(at_iso), attempt)


def check(room_id: str, at: datetime, attempt: int = 0, connection: Any = None) -> str:
    """Start the room if its schedule still says ``at`` and it is ready (module docstring)."""
    from ..jobs import redis
    from . import service

    room = db.session.get(LiveRoom, room_id)
    if room is None or room.starts_at is None or _aware(room.starts_at) != at:
        return "superseded"  # deleted, or its time changed: that call was armed anew
    if room.status == LiveRoomStatus.LIVE or room.schedule_state in ("started", "missed"):
        return room.schedule_state or "live"
    service.sync(room)
    if room.status == LiveRoomStatus.READY or room.status == LiveRoomStatus.ENDED:
        try:
            service.start(room, get_referenced(User, room.owner_id), scheduled=True)
        except DomainError as exc:
            db.session.rollback()
            return _state(room, "refused", f"{exc.message} ({exc.code})")
        return _state(room, "started", None)
    grace = float(current_app.config["LIVE_SCHEDULE_GRACE_S"])
    late = (utcnow() - at).total_seconds()
    if late >= grace:
        return _state(
            room,
            "missed",
            f"The show was not ready {grace / 60:g} minutes after its start time (its clips "
            "were still rendering): start it by hand, or set a new time.",
        )
    when = utcnow() + timedelta(seconds=RETRY_S)
    _state(room, "waiting", "Its clips are still rendering: it goes live once they are ready.")
    _enqueue(connection or redis(), room.id, at, when, attempt + 1)
    return "waiting"


def _state(room: LiveRoom, state: str, note: str | None) -> str:
    room.schedule_state, room.schedule_note = state, note
    db.session.commit()
    return state
