"""Withdrawal stops everything at once (R5): queued and running work, new renders, files."""

from __future__ import annotations

import io

import pytest
from rq import Queue, SimpleWorker

from compliance.vault import KeyDestroyed
from webapp import identity, jobs, likeness
from webapp.errors import Forbidden
from webapp.extensions import db
from webapp.models import AuditEvent, Avatar, Job, Render, Upload
from webapp.queue import connect
from webapp.storage import store, vault

from .. import factories


def _ready_avatar():  # type: ignore[no-untyped-def]
    owner = factories.user()
    subject, token = factories.consented_subject(owner)
    avatar = factories.avatar(owner, subject)
    avatar.status = "ready"
    blob_id, size, sha = store(subject.id, io.BytesIO(b"training footage " * 1000))
    db.session.add(
        Upload(
            owner_id=owner.id,
            subject_id=subject.id,
            avatar_id=avatar.id,
            kind="training_video",
            blob_id=blob_id,
            filename="t.mp4",
            size=size,
            sha256=sha,
        )
    )
    db.session.commit()
    return owner, subject, avatar, token, blob_id


def test_revocation_cancels_a_render_queued_before_it(app, client):
    with app.app_context():
        owner, subject, avatar, token, blob_id = _ready_avatar()
        likeness.require(subject, avatar)  # allowed before the withdrawal
        render = Render(owner_id=owner.id, avatar_id=avatar.id, script="Hello there.")
        db.session.add(render)
        db.session.flush()
        job_id = jobs.submit("render", owner.id, render.id).id
        db.session.commit()
        render_id, subject_id, avatar_id = render.id, subject.id, avatar.id

    res = client.post(f"/api/v1/consent/{token}/revoke")
    assert res.status_code == 200
    receipt = res.json["receipt"]
    assert res.json["status"] == "revoked"
    assert receipt["jobs_canceled"] == [job_id]
    assert receipt["key_destroyed"] is True and receipt["files_deleted"] == 1

    conn = connect(app.config["REDIS_URL"])
    gpu = Queue("gpu", connection=conn)
    assert gpu.job_ids == [job_id]  # still on the queue: the worker must refuse it
    with app.app_context():
        SimpleWorker([gpu], connection=conn).work(burst=True)
        job = db.session.get(Job, job_id)
        assert (job.status, job.attempts, job.error) == ("canceled", 0, "canceled: consent_revoked")
        assert db.session.get(Render, render_id).status == "canceled"
        avatar = db.session.get(Avatar, avatar_id)
        assert avatar.status == "revoked"
        with pytest.raises(Forbidden) as refused:
            likeness.require(avatar.subject, avatar)
        assert refused.value.code == "consent_revoked"
        with pytest.raises(KeyDestroyed):
            vault().read(subject_id, blob_id)
        assert list(vault().store.list(f"blobs/{subject_id}/")) == []
        tags = [e.tag for e in db.session.query(AuditEvent).order_by(AuditEvent.id)]
        assert tags[-3:] == ["consent:revoke", "key:destroyed", "job:canceled"]


def test_a_running_job_stops_at_its_next_stage(app, client):
    with app.app_context():
        owner, subject, avatar, token, _ = _ready_avatar()
        job_id = jobs.submit("train_avatar", owner.id, avatar.id).id
        db.session.commit()
        stages = []
        with jobs.running(job_id) as started:
            assert started is not None
            job, report = started
            report(0.1, "ingest")
            stages.append("ingest")
            assert client.post(f"/api/v1/consent/{token}/revoke").status_code == 200
            report(0.5, "voice")  # the gate runs here and stops the job
            stages.append("voice")
        assert stages == ["ingest"]
        job = db.session.get(Job, job_id)
        assert (job.status, job.active_key) == ("canceled", None)


def test_training_needs_verified_identity_and_consent(app):
    with app.app_context():
        owner = factories.user()
        avatar = factories.avatar(owner)  # no KYC, no consent
        job_id = jobs.submit("train_avatar", owner.id, avatar.id).id
        db.session.commit()
        with jobs.running(job_id) as started:
            assert started is None
        assert db.session.get(Job, job_id).error == "canceled: kyc_required"
        identity.start(owner)  # the account holder verified, the subject not asked yet
        assert likeness.blocked(avatar.subject, avatar) == "consent_required"
