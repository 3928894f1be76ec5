"""The public report channel (R21): a file, a content id or a link; resolved by the
verifier to our render, or "not ours"; a not_me report freezes the avatar; the reporter
follows a secret status link; the account holder is told."""

from __future__ import annotations

import email
import email.policy
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import select

from webapp import jobs
from webapp.extensions import db
from webapp.models import AuditEvent, Avatar, Report, User
from webapp.reports.service import attachment_owner
from webapp.storage import vault

from .. import factories
from .reporting import published_render

pytestmark = pytest.mark.slow


def _report(client, path=None, **fields):
    if path is None:
        return client.post("/api/v1/reports", json=fields)
    return client.post("/api/v1/reports", **factories.multipart("file", path, **fields))


def _tags(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.tag).order_by(AuditEvent.id)))


def _hours_left(due_by: str) -> float:
    return (datetime.fromisoformat(due_by) - datetime.now(UTC)) / timedelta(hours=1)


def test_not_me_report_on_a_stamped_render_resolves_freezes_and_tells_the_owner(
    make_app, stamped_media
):
    app, ids = published_render(make_app, stamped_media, webhook=True)
    client = app.test_client()
    res = _report(
        client,
        stamped_media.stamped,
        category="not_me",
        reason="This is me. I never agreed to this.",
        contact="Me@Example.org",
    )
    assert res.status_code == 201, res.json
    body = res.json
    assert body["resolved"] is True and body["content_id"] == ids["content_id"]
    assert body["avatar_frozen"] is True and body["attachment_kept"] is True
    assert body["status"] == "open" and body["category"] == "not_me"
    assert 23.9 < _hours_left(body["due_by"]) <= 24.0
    assert body["message"].startswith(
        f"This video was made with Digital Human Factory (content id {ids['content_id']}). "
        "Its avatar is frozen until a moderator decides."
    )
    token = body["status_token"]
    assert body["status_url"].endswith(f"/report/status/{token}")

    with app.app_context():
        report = db.session.get(Report, body["ticket_id"])
        assert report.status_token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        assert token not in str(report.__dict__)  # only the digest is kept
        assert (report.render_id, report.avatar_id) == (ids["render_id"], ids["avatar_id"])
        assert (report.subject_id, report.owner_id) == (ids["subject_id"], ids["owner_id"])
        assert report.contact == "me@example.org" and report.priority == 3
        assert report.verification["verdict"] == "ai_generated_by_us"
        kept = vault().read(attachment_owner(report), report.attachment_blob_id)
        assert kept == stamped_media.stamped.read_bytes()
        with vault().store.get(f"blobs/report-{report.id}/{report.attachment_blob_id}") as fh:
            assert kept not in fh.read()  # encrypted
        avatar = db.session.get(Avatar, ids["avatar_id"])
        assert avatar.frozen_at is not None and avatar.frozen_reason == f"report {report.id}"
        queued = Queue("cpu", connection=jobs.redis()).jobs
        events = [j.args[1] for j in queued if j.func_name.endswith("deliver")]
        opened = [e for e in events if e["type"] == "report.opened"]
        assert opened and opened[0]["data"]["report_id"] == report.id
        assert opened[0]["data"]["avatar_frozen"] is True
        assert "never agreed" not in str(opened[0])  # the reporter's words stay private
    assert {"report:opened", "avatar:frozen", "verify:request"} <= set(_tags(app))
    mails = list(Path(app.instance_path, "mail").glob("*.eml"))
    assert len(mails) == 1
    mail = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    assert (
        mail["Subject"]
        == f"A report about content {ids['content_id']} (ticket {body['ticket_id']})"
    )
    text = mail.get_content()
    assert "The avatar is frozen until a moderator decides." in text
    assert "never agreed" not in text and "me@example.org" not in text

    status = client.get(f"/api/v1/reports/status/{token}").json
    assert status["ticket_id"] == body["ticket_id"] and status["status"] == "open"
    assert status["due_by"] == body["due_by"] and status["outcome"] is None
    page = client.get(f"/report/status/{token}")
    assert page.status_code == 200 and body["ticket_id"] in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert client.get("/api/v1/reports/status/not-a-token").status_code == 404


def test_a_metadata_stripped_reencode_still_resolves_by_its_watermark(make_app, stamped_media):
    app, ids = published_render(make_app, stamped_media)
    body = _report(
        app.test_client(),
        stamped_media.stripped,
        category="fraud",
        reason="A fake investment pitch.",
    ).json
    assert body["resolved"] is True and body["content_id"] == ids["content_id"]
    assert body["avatar_frozen"] is False  # only "it's me" freezes at once
    assert 71.9 < _hours_left(body["due_by"]) <= 72.0
    with app.app_context():
        report = db.session.get(Report, body["ticket_id"])
        assert report.verification["c2pa_state"] is None
        assert report.verification["watermark_found"] is True
        assert report.verification["watermark_p_value"] <= 1e-9
        assert db.session.get(Avatar, ids["avatar_id"]).frozen_at is None


def test_an_unrelated_clip_is_not_ours_and_is_not_kept(make_app, stamped_media):
    app, ids = published_render(make_app, stamped_media)
    body = _report(
        app.test_client(),
        stamped_media.unrelated,
        category="not_me",
        reason="Someone made a video of me.",
    ).json
    assert body["resolved"] is False and body["content_id"] is None
    assert body["attachment_kept"] is False and body["avatar_frozen"] is False
    assert body["message"].startswith(
        "Not ours: we found no mark of Digital Human Factory and no record of this content"
    )
    with app.app_context():
        report = db.session.get(Report, body["ticket_id"])
        assert report.owner_id is None and report.verification["verdict"] == "unknown"
        assert report.priority == 2
        assert db.session.get(Avatar, ids["avatar_id"]).frozen_at is None
    assert not Path(app.instance_path, "mail").exists()  # nobody's content: nobody told


def test_report_by_content_id_or_link_and_clear_errors(make_app, stamped_media):
    app, ids = published_render(make_app, stamped_media)
    client = app.test_client()
    res = _report(client, category="harmful", reason="Hateful.", content_id=ids["content_id"])
    assert res.status_code == 201 and res.json["resolved"] is True
    res = _report(client, category="other", reason="Seen here.", link="https://video.example/x")
    assert res.status_code == 201 and res.json["resolved"] is False
    with app.app_context():
        assert db.session.get(Report, res.json["ticket_id"]).link == "https://video.example/x"

    def error(**fields):
        res = _report(client, **fields)
        return res.status_code, res.json["error"]

    cid = ids["content_id"]
    assert error(category="not_me", content_id=cid) == (422, "missing_fields")
    assert error(category="appeal", reason="x", content_id=cid) == (422, "bad_category")
    assert error(category="other", reason="x") == (422, "nothing_to_report")
    assert error(category="other", reason="x", content_id="../etc") == (422, "bad_content_id")
    assert error(category="other", reason="x", link="javascript:alert(1)") == (422, "bad_link")
    assert error(category="other", reason="x", content_id=cid, contact="no") == (
        422,
        "invalid_email",
    )
    assert error(category="other", reason="x" * 4001, content_id=cid) == (422, "too_long")
    assert error(category="other", reason=7, content_id=cid) == (422, "bad_field")


def test_attachments_are_limited_before_decoding_and_reports_are_rate_limited(
    make_app, stamped_media
):
    app = make_app(VERIFY_MAX_BYTES=1000, RATELIMIT_REPORT="3 per minute")
    client = app.test_client()
    res = _report(client, stamped_media.unrelated, category="other", reason="x")
    assert res.status_code == 413 and res.json["error"] == "too_large"
    fields = {"category": "other", "reason": "x", "link": "https://example.com/v"}
    assert _report(client, **fields).status_code == 201
    assert client.post("/report", data=fields).status_code == 302  # page and API: one bucket
    res = _report(client, **fields)
    assert res.status_code == 429 and res.json["error"] == "rate_limited"
    with app.app_context():
        assert db.session.scalar(select(User.id)) is None  # nobody needed an account
