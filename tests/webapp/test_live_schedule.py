"""Scheduled shows (issue 19): a room saved with ``starts_at`` is put into RQ's scheduled
registry; at that time it goes live if ready, waits (and says so) while its clips render,
is ``missed`` after the grace period, and ignores a call armed for a time since changed.
The RQ scheduler itself is RQ's (``dhf worker`` runs it); its entry point is called here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from webapp import jobs
from webapp.extensions import db
from webapp.live import schedule
from webapp.models import Job, LiveRoom, Render

from .test_live_api import _body, _owner, public_dns  # noqa: F401 (the fixture is used)

# scheduling does not depend on the database engine (the live API's tests run on both)
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _scheduled(app) -> dict[str, datetime]:  # type: ignore[no-untyped-def]
    with app.app_context():
        registry = ScheduledJobRegistry("cpu", connection=jobs.redis())
        return {
            job_id: registry.get_scheduled_time(job_id).replace(tzinfo=UTC)
            for job_id in registry.get_job_ids()
            if job_id.startswith(schedule.JOB_PREFIX)
        }


def _state(app, room_id: str) -> tuple[str, str | None, str | None]:  # type: ignore[no-untyped-def]
    with app.app_context():
        room = db.session.get(LiveRoom, room_id)
        return room.status, room.schedule_state, room.schedule_note


def test_a_scheduled_show_waits_for_its_clips_then_starts_itself(app, client):
    headers, avatar_id = _owner(app)
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    body = _body(avatar_id, starts_at=at.isoformat())
    room = client.post("/api/v1/live-rooms", json=body, headers=headers).json
    assert room["schedule"] == {"state": "scheduled", "note": None}
    assert _scheduled(app) == {schedule.job_id(room["id"], at): at}  # once, at that time
    with app.app_context():  # the clips are still rendering at the start time
        assert schedule.autostart(room["id"], at.isoformat()) == "waiting"
    status, state, note = _state(app, room["id"])
    assert (status, state) == ("rendering", "waiting") and "still rendering" in (note or "")
    assert schedule.job_id(room["id"], at, 1) in _scheduled(app)  # checked again soon
    with app.app_context():  # the notice, the idle clip and the first segment are rendered
        for render in db.session.scalars(select(Render).order_by(Render.created_at)).all()[:3]:
            render.status, render.output_blob_id = "ready", f"blob-{render.id}"
        db.session.commit()
        assert schedule.autostart(room["id"], at.isoformat(), 1) == "started"
        job = db.session.scalars(select(Job).where(Job.kind == "live_show")).one()
        assert job.target_id == room["id"]
    assert _state(app, room["id"])[:2] == ("live", "started")


def test_a_show_not_ready_in_time_is_missed_and_a_moved_time_supersedes(app, client):
    headers, avatar_id = _owner(app)
    at = (datetime.now(UTC) - timedelta(minutes=20)).replace(microsecond=0)
    room = client.post(
        "/api/v1/live-rooms", json=_body(avatar_id, starts_at=at.isoformat()), headers=headers
    ).json
    with app.app_context():
        assert schedule.autostart(room["id"], at.isoformat()) == "missed"  # grace: 15 min
    status, state, note = _state(app, room["id"])
    assert (status, state) == ("rendering", "missed") and "start it by hand" in (note or "")
    later = at + timedelta(days=1)
    res = client.patch(
        f"/api/v1/live-rooms/{room['id']}",
        json={"starts_at": later.isoformat()},
        headers=headers,
    )
    assert res.json["schedule"] == {"state": "scheduled", "note": None}
    assert schedule.job_id(room["id"], later) in _scheduled(app)
    with app.app_context():  # the call armed for the old time does nothing
        assert schedule.autostart(room["id"], at.isoformat()) == "superseded"
    res = client.patch(
        f"/api/v1/live-rooms/{room['id']}", json={"starts_at": None}, headers=headers
    )
    assert res.json["schedule"] == {"state": None, "note": None}
    with app.app_context():
        assert schedule.autostart(room["id"], later.isoformat()) == "superseded"
