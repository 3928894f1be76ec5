"""The job registry: a new kind of job is one decorated function, and it gets the gate,
the states, the failure handling and the audit events of every other kind."""

from __future__ import annotations

from typing import Any

import pytest

from webapp import jobs
from webapp.extensions import db
from webapp.models import AuditEvent, Avatar, AvatarStatus, Job, JobStatus, utcnow

from .. import factories

CALLS: list[str] = []


def _undo(job: Job) -> None:
    CALLS.append(f"undo {job.target_id}")


@jobs.job("test_wave", queue="cpu", target=Avatar, likeness=True, on_failure=_undo)
def wave(job: Job, report: jobs.Progress) -> dict[str, Any]:
    """A whole job kind: it sees its row, reports stages, returns its result."""
    report(0.5, "waving")
    avatar = db.session.get(Avatar, job.target_id)
    if avatar.name == "fails":
        raise RuntimeError("the wave went wrong")
    return {"waved_at": avatar.name}


def _consented_avatar(name: str = "Ada presenter") -> Avatar:
    owner = factories.user()
    subject, _ = factories.consented_subject(owner)
    avatar = factories.avatar(owner, subject, name=name)
    db.session.commit()
    return avatar


def test_a_new_kind_is_registered_with_its_queue_and_target(app):
    kind = jobs.kind("test_wave")
    assert (kind.queue, kind.target, kind.likeness, kind.func) == ("cpu", Avatar, True, wave)
    with app.app_context():
        assert kind.spec().timeout == app.config["JOB_TIMEOUT_CPU"]
    assert {"probe_upload", "train_avatar", "render"} <= set(jobs.KINDS)
    with pytest.raises(LookupError, match="no job kind 'nope'"):
        jobs.kind("nope")


def test_a_new_kind_runs_through_the_gate_to_finished(app):
    with app.app_context():
        avatar = _consented_avatar()
        row = jobs.submit("test_wave", avatar.owner_id, avatar.id, enqueue=False)
        db.session.commit()
        assert row.queue == "cpu" and row.status == JobStatus.QUEUED
        assert wave(row.id) == {"waved_at": "Ada presenter"}
        db.session.refresh(row)
        assert (row.status, row.progress, row.stage, row.active_key) == (
            "finished",
            1.0,
            "done",
            None,
        )
        finished = db.session.query(AuditEvent).filter_by(tag="job:finished").all()
        assert [e.data for e in finished] == [
            {"job": row.id, "kind": "test_wave", "avatar": avatar.id}
        ]


def test_a_frozen_avatar_stops_a_likeness_kind_before_it_starts(app):
    with app.app_context():
        avatar = _consented_avatar()
        row = jobs.submit("test_wave", avatar.owner_id, avatar.id, enqueue=False)
        avatar.frozen_at, avatar.frozen_reason = utcnow(), "report r1"
        db.session.commit()
        assert wave(row.id) == {"status": "canceled"}
        db.session.refresh(row)
        assert (row.status, row.attempts, row.error) == ("canceled", 0, "canceled: avatar_frozen")
        # unfreezing gives back the state it had: a freeze is not a status
        assert db.session.get(Avatar, avatar.id).status == AvatarStatus.DRAFT


def test_the_last_failed_attempt_runs_the_kinds_undo_once(app):
    CALLS.clear()
    with app.app_context():
        avatar = _consented_avatar(name="fails")
        row = jobs.submit("test_wave", avatar.owner_id, avatar.id, enqueue=False)
        db.session.commit()
        with pytest.raises(RuntimeError, match="the wave went wrong"):
            wave(row.id)  # no RQ job around it: this was the last attempt
        db.session.refresh(row)
        assert row.status == "failed" and "the wave went wrong" in row.error
        assert CALLS == [f"undo {avatar.id}"]


def test_a_status_outside_the_lifecycle_is_refused_by_the_database(app):
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError, StatementError

    with app.app_context():
        avatar = _consented_avatar()
        with pytest.raises((IntegrityError, StatementError)):
            db.session.execute(
                text("UPDATE avatars SET status = 'frozen' WHERE id = :id"), {"id": avatar.id}
            )
            db.session.flush()
        db.session.rollback()
        with pytest.raises(StatementError):  # the ORM refuses it before the database
            avatar = db.session.get(Avatar, avatar.id)
            avatar.status = "frozen"
            db.session.flush()
