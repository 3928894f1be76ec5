"""The retention schedule (R24): expired files deleted with receipts in the audit chain,
legal holds kept, dry runs touching nothing, the CLI and the daily scheduling."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from rq.registry import ScheduledJobRegistry

from compliance.audit import EventTag
from compliance.vault import VaultError
from webapp import retention
from webapp.audit import verify_log
from webapp.cli.retention import retention as retention_group
from webapp.extensions import db
from webapp.jobs import redis
from webapp.models import AuditEvent, ConsentRecord, Render, Report, Upload, utcnow
from webapp.queue import queue
from webapp.storage import vault

from .. import factories

OLD = timedelta(days=400)  # past every default retention


def stored(subject, kind: str, data: bytes, age: timedelta, **fields) -> Upload:  # type: ignore[no-untyped-def]
    blob_id = vault().put(subject.id, io.BytesIO(data))[0]
    upload = Upload(
        owner_id=subject.owner_id,
        subject_id=subject.id,
        kind=kind,
        blob_id=blob_id,
        filename=f"{kind}.bin",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=utcnow() - age,
        **fields,
    )
    db.session.add(upload)
    db.session.commit()
    return upload


def readable(subject_id: str, blob_id: str) -> bool:
    try:
        vault().read(subject_id, blob_id)
    except VaultError:
        return False
    return True


def open_report(subject_id: str) -> Report:
    report = Report(
        reason="That is me and I never agreed.",
        subject_id=subject_id,
        category="not_me",
        due_by=utcnow() + timedelta(days=1),
    )
    db.session.add(report)
    db.session.commit()
    return report


def receipts() -> list[dict]:  # type: ignore[type-arg]
    rows = db.session.query(AuditEvent).filter_by(tag=str(EventTag.RETENTION_DELETED))
    return [row.data for row in rows.order_by(AuditEvent.id)]


@pytest.fixture
def people(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        owner = factories.user()
        ada, _ = factories.consented_subject(owner, "Ada Example")
        bob, _ = factories.consented_subject(owner, "Bob Example")
        files = {
            "ada_old": stored(ada, "voice_sample", b"ada's old take", OLD),
            "ada_new": stored(ada, "voice_sample", b"ada's new take", timedelta(days=2)),
            "bob_old": stored(bob, "voice_sample", b"bob's old take", OLD),
        }
        report = open_report(bob.id)  # a legal hold on everything of Bob's
        rows = {k: (u.id, u.subject_id, u.blob_id, u.sha256) for k, u in files.items()}
        report_id = report.id
    return app, rows, report_id


def test_an_expired_voice_take_is_deleted_one_under_a_legal_hold_is_kept(people):
    app, files, report_id = people
    with app.app_context():
        dry = retention.run(dry_run=True)
        assert (dry.deleted, dry.held) == ({"voice_take": 1}, {"voice_take": 1})
        assert all(readable(s, b) for _, s, b, _ in files.values())
        assert receipts() == [] and db.session.get(Upload, files["ada_old"][0]).purged_at is None

        summary = retention.run()
        assert (summary.deleted, summary.held) == ({"voice_take": 1}, {"voice_take": 1})
        upload_id, ada_id, blob, sha = files["ada_old"]
        assert not readable(ada_id, blob)
        assert db.session.get(Upload, upload_id).purged_at is not None
        assert readable(*files["ada_new"][1:3]) and readable(*files["bob_old"][1:3])
        [receipt] = receipts()
        assert receipt["kind"] == "voice_take" and receipt["subject"] == ada_id
        assert receipt["count"] == 1 and receipt["files"] == [{"id": upload_id, "sha256": sha}]
        assert summary.receipts[0]["receipt_id"]
        assert verify_log().ok

        assert retention.run().deleted == {} and len(receipts()) == 1  # nothing twice
        db.session.get(Report, report_id).status = "decided"  # the hold ends with the report
        db.session.commit()
        assert retention.run().deleted == {"voice_take": 1}
        assert not readable(*files["bob_old"][1:3])
        assert [r["subject"] for r in receipts()] == [ada_id, files["bob_old"][1]]
        assert verify_log().ok


def test_renders_models_and_consent_recordings_follow_their_own_rules(app):
    with app.app_context():
        owner = factories.user()
        ada, _ = factories.consented_subject(owner)
        avatar = factories.avatar(owner, ada)
        blob = vault().put(ada.id, io.BytesIO(b"stamped mp4"))[0]
        render = Render(
            owner_id=owner.id,
            avatar_id=avatar.id,
            script="Old news.",
            status="ready",
            content_id="c" * 32,
            output_blob_id=blob,
            created_at=utcnow() - OLD,
        )
        avatar.model_blob_id = vault().put(ada.id, io.BytesIO(b"model tar"))[0]
        avatar.created_at = utcnow() - OLD
        db.session.add(render)
        rejected = stored(ada, "consent_video", b"a rejected attempt", OLD)
        proof = stored(ada, "consent_video", b"the verified consent", OLD)
        record = db.session.query(ConsentRecord).filter_by(subject_id=ada.id).one()
        record.recording_upload_id = proof.id
        db.session.commit()
        summary = retention.run()
        assert summary.deleted == {"consent_recording": 1, "trained_model": 1, "render": 1}
        assert not readable(ada.id, rejected.blob_id) and readable(ada.id, proof.blob_id)
        assert not readable(ada.id, blob) and db.session.get(Render, render.id).purged_at
        assert db.session.get(type(avatar), avatar.id).model_purged_at is not None
        kinds = {r["kind"]: r for r in receipts()}
        assert kinds["render"]["files"] == [{"id": render.id, "content_id": "c" * 32}]
        assert verify_log().ok
        avatar.status = "ready"
        db.session.commit()
        headers, render_id, avatar_id = factories.token_for(owner), render.id, avatar.id
    client = app.test_client()
    res = client.get(f"/api/v1/renders/{render_id}/download", headers=headers)
    assert res.status_code == 404 and res.json["error"] == "file_deleted"
    # the model is gone: a new render is refused up front, not failed in the worker
    again = client.post(
        "/api/v1/renders", headers=headers, json={"avatar_id": avatar_id, "script": "Hello again."}
    )
    assert again.status_code == 409 and again.json["error"] == "model_deleted"


def test_cli_dry_run_deletes_nothing_and_reports_what_it_would(people, monkeypatch):
    app, files, _ = people
    monkeypatch.setattr("webapp.create_app", lambda: app)
    result = CliRunner().invoke(retention_group, ["run", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["dry_run"] and out["deleted"] == {"voice_take": 1}
    assert out["receipts"][0]["files"] == [
        {"id": files["ada_old"][0], "sha256": files["ada_old"][3]}
    ]
    with app.app_context():
        assert all(readable(s, b) for _, s, b, _ in files.values()) and receipts() == []
    text = CliRunner().invoke(retention_group, ["run"])
    assert text.exit_code == 0 and "voice_take: deleted 1, kept under a legal hold 1" in text.output


def test_the_daily_run_is_scheduled_once_per_day_and_schedules_the_next(app):
    with app.app_context():
        connection = redis()
        registry = ScheduledJobRegistry(queue=queue("cpu", connection))
        now = datetime(2026, 12, 2, 14, 30, tzinfo=UTC)
        assert retention.schedule(connection, now) == "dhf-retention-20261203"
        assert retention.schedule(connection, now) is None  # a second worker: nothing new
        assert registry.get_job_ids() == ["dhf-retention-20261203"]
        at = registry.get_scheduled_time("dhf-retention-20261203")
        assert at.replace(tzinfo=UTC) == datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
        assert retention.next_run(datetime(2026, 12, 2, 2, 0, tzinfo=UTC)).day == 2
        assert retention.on_worker_start(connection, ["gpu"]) is None  # only cpu workers
        armed = retention.on_worker_start(connection, ["gpu", "cpu"])
        assert armed == retention.job_id(retention.next_run(utcnow()))
        result = retention.daily()  # what the worker runs at 03:00
        assert result["dry_run"] is False
        tomorrow = retention.job_id(retention.next_run(utcnow()))
        assert tomorrow in registry.get_job_ids()
