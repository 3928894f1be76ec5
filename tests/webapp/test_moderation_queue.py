"""The moderator queue (R20, R21): takedowns, freezes, the sanctions ladder as the server
enforces it, appeals, and who may act."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from compliance.vault import VaultError
from webapp import jobs
from webapp.billing import ledger
from webapp.errors import Forbidden
from webapp.extensions import db
from webapp.models import AuditEvent, Avatar, ContentRecord, Job, Render, Report, User
from webapp.reports import moderation
from webapp.storage import vault
from webapp.studio import delivery

from .. import factories
from ..conftest import TEST_PASSWORD
from .reporting import admin, grant_minutes, published_render

pytestmark = pytest.mark.slow


def _login(app, email_address: str):
    client = app.test_client()
    res = client.post("/login", data={"email": email_address, "password": TEST_PASSWORD})
    assert res.status_code == 302, res.text
    return client


def _report(client, **fields) -> str:
    res = client.post("/api/v1/reports", json=fields)
    assert res.status_code == 201, res.json
    return res.json["ticket_id"]


def _act(app, report_id: str, moderator_id: str, action: str, reason: str, **kw) -> Report:
    with app.app_context():
        report = moderation.act(report_id, db.session.get(User, moderator_id), action, reason, **kw)
        return report


def _mails(app) -> list[email.message.EmailMessage]:
    folder = Path(app.instance_path, "mail")
    paths = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]


def test_takedown_stops_a_valid_download_link_and_verify_says_taken_down(make_app, stamped_media):
    app, ids = published_render(make_app, stamped_media, webhook=True)
    with app.app_context():
        moderator = admin()
        link = "/api/v1/renders/{}/download?t={}".format(
            ids["render_id"], delivery.link_token(db.session.get(Render, ids["render_id"]))
        )
    client = app.test_client()
    assert client.get(link).data == stamped_media.stamped.read_bytes()  # valid a second ago
    ticket = _report(client, category="harmful", reason="Abuse.", content_id=ids["content_id"])
    page = _login(app, moderator.email)
    queue = page.get("/admin/reports")
    assert queue.status_code == 200 and ticket in queue.text and ids["render_id"] in queue.text
    assert "report:opened" in queue.text  # the audit trail of what it names
    res = page.post(f"/admin/reports/{ticket}", data={"action": "take_down", "reason": ""})
    assert res.status_code == 422  # a reason is required
    res = page.post(
        f"/admin/reports/{ticket}",
        data={"action": "take_down", "reason": "Harassment, confirmed.", "close": "y"},
    )
    assert res.status_code == 302

    gone = client.get(link)
    assert gone.status_code == 410 and gone.json == {
        "error": "taken_down",
        "message": "This video was taken down by our trust & safety team.",
    }
    verified = client.post("/api/v1/verify", **factories.multipart("file", stamped_media.stripped))
    content = verified.json["content"]
    assert content["content_id"] == ids["content_id"] and content["taken_down"] is True
    assert content["taken_down_at"] is not None
    html = client.post("/verify", **factories.multipart("file", stamped_media.stamped)).text
    assert "taken_down: removed by our trust &amp; safety team" in html
    with app.app_context():
        render = db.session.get(Render, ids["render_id"])
        assert render.status == "taken_down" and render.taken_down_at is not None
        assert render.output_blob_id is None
        assert db.session.get(ContentRecord, ids["content_id"]) is not None  # the row stays
        with pytest.raises((VaultError, OSError)):
            vault().read(ids["subject_id"], ids["blob_id"])
        report = db.session.get(Report, ticket)
        assert (report.status, report.outcome) == ("decided", "taken_down")
        assert (
            report.decision_note == "Harassment, confirmed." and report.decided_by == moderator.id
        )
        tags = set(db.session.scalars(select(AuditEvent.tag)))
        assert {"render:taken-down", "report:decided"} <= tags
        from rq import Queue

        events = [j.args[1]["type"] for j in Queue("cpu", connection=jobs.redis()).jobs]
        assert "report.decided" in events
    decided = _mails(app)[-1]
    assert decided["Subject"] == f"Report {ticket}: taken_down"
    assert "Reason: Harassment, confirmed." in decided.get_content()
    assert page.get("/admin/reports").text.count(ticket) == 0  # no longer open


def test_a_freeze_stops_a_queued_render_in_the_worker_and_gives_the_credits_back(
    make_app, stamped_media
):
    app, ids = published_render(make_app, stamped_media)
    with app.app_context():
        owner = db.session.get(User, ids["owner_id"])
        grant_minutes(owner, 2)
        headers = factories.token_for(owner)
        moderator = admin()
    client = app.test_client()
    res = client.post(
        "/api/v1/renders",
        json={"avatar_id": ids["avatar_id"], "script": "Hello and welcome."},
        headers=headers,
    )
    assert res.status_code == 202, res.json
    render_id = res.json["id"]
    with app.app_context():
        assert ledger.balance(ids["owner_id"]) < 120
        job_id = db.session.scalar(select(Job.id).where(Job.target_id == render_id))
    # "it's me" on our content: the avatar is frozen at once, before any moderator
    ticket = _report(client, category="not_me", reason="Me.", content_id=ids["content_id"])
    with app.app_context():
        assert jobs.kind("render").func(job_id) == {"status": "canceled"}
        job, render = db.session.get(Job, job_id), db.session.get(Render, render_id)
        assert (job.status, job.error) == ("canceled", "canceled: avatar_frozen")
        assert render.status == "canceled"
        assert ledger.balance(ids["owner_id"]) == 120  # the reservation came back
    again = client.post(
        "/api/v1/renders", json={"avatar_id": ids["avatar_id"], "script": "Hi."}, headers=headers
    )
    assert again.status_code == 403 and again.json["error"] == "avatar_frozen"

    # dismissing the report lifts the freeze it made; a moderator's own freeze stays
    _act(app, ticket, moderator.id, "dismiss", "It is not the reporter.")
    with app.app_context():
        assert db.session.get(Avatar, ids["avatar_id"]).frozen_at is None
    other = _report(client, category="fraud", reason="Scam.", content_id=ids["content_id"])
    _act(app, other, moderator.id, "freeze", "Scam pattern.", close=False)
    with app.app_context():
        avatar = db.session.get(Avatar, ids["avatar_id"])
        assert avatar.frozen_reason == f"report {other}: Scam pattern."
        assert db.session.get(Report, other).status == "open"
    assert (
        client.post(
            "/api/v1/renders",
            json={"avatar_id": ids["avatar_id"], "script": "Hi."},
            headers=headers,
        ).json["error"]
        == "avatar_frozen"
    )
    _act(app, other, moderator.id, "unfreeze", "Cleared.")
    ok = client.post(
        "/api/v1/renders", json={"avatar_id": ids["avatar_id"], "script": "Hi."}, headers=headers
    )
    assert ok.status_code == 202
    with app.app_context():
        tags = list(db.session.scalars(select(AuditEvent.tag)))
        assert tags.count("avatar:frozen") == 2 and tags.count("avatar:unfrozen") == 2


def test_each_sanction_step_changes_what_the_account_may_do(make_app, stamped_media):
    app, ids = published_render(make_app, stamped_media)
    with app.app_context():
        owner = db.session.get(User, ids["owner_id"])
        grant_minutes(owner, 5)
        headers = factories.token_for(owner)
        moderator = admin()
    client = app.test_client()
    browser = _login(app, ids["email"])
    ticket = _report(client, category="fraud", reason="Scam.", content_id=ids["content_id"])

    def step(reason: str) -> None:
        _act(app, ticket, moderator.id, "sanction", reason, close=False)

    def render() -> object:
        body = {"avatar_id": ids["avatar_id"], "script": "Hello."}
        return client.post("/api/v1/renders", json=body, headers=headers)

    assert client.get("/api/v1/me", headers=headers).json["sanction"]["step"] == "none"
    step("First scam report.")  # -> warning: shown, nothing else changes
    me = client.get("/api/v1/me", headers=headers).json["sanction"]
    assert (me["step"], me["reason"]) == ("warning", "First scam report.")
    assert me["appeal_url"] == "/account/appeal"
    banner = browser.get("/dashboard").text
    assert "Your account has a warning from our trust &amp; safety team." in banner
    assert "Reason: First scam report." in banner
    queued = render()
    assert queued.status_code == 202

    step("Second scam report.")  # -> restricted: no new avatars or renders
    subject_id = ids["subject_id"]
    res = client.post(
        "/api/v1/avatars", json={"subject_id": subject_id, "name": "B"}, headers=headers
    )
    assert res.status_code == 403 and res.json["error"] == "account_restricted"
    assert res.json["message"].endswith("Reason: Second scam report.")
    assert render().json["error"] == "account_restricted"

    step("Confirmed fraud.")  # -> suspended: queued work stops in the worker too
    with app.app_context():
        job_id = db.session.scalar(select(Job.id).where(Job.target_id == queued.json["id"]))
        assert jobs.kind("render").func(job_id) == {"status": "canceled"}
        assert db.session.get(Job, job_id).error == "canceled: account_suspended"
    res = client.post(f"/api/v1/avatars/{ids['avatar_id']}/train", headers=headers)
    assert res.status_code == 403 and res.json["error"] == "account_suspended"
    assert render().json["error"] == "account_suspended"

    step("Repeated fraud.")  # -> closed: no login, tokens and sessions end
    res = client.get("/api/v1/me", headers=headers)
    assert res.status_code == 401 and res.json["error"] == "invalid_token"
    login = client.post(
        "/api/v1/auth/tokens", json={"email": ids["email"], "password": TEST_PASSWORD}
    )
    assert login.status_code == 403 and login.json["error"] == "account_closed"
    assert browser.get("/dashboard").status_code == 302  # the browser session ended
    with app.app_context():
        steps = [
            (e.data["from"], e.data["to"])
            for e in db.session.scalars(
                select(AuditEvent).where(AuditEvent.tag == "account:sanction")
            )
        ]
    assert steps == [
        ("none", "warning"),
        ("warning", "restricted"),
        ("restricted", "suspended"),
        ("suspended", "closed"),
    ]

    # a closed account appeals with its password; the appeal reaches the queue
    res = client.post(
        "/account/appeal",
        data={"email": ids["email"], "password": "wrong password!", "reason": "Please."},
    )
    assert res.status_code == 401
    res = client.post(
        "/account/appeal",
        data={"email": ids["email"], "password": TEST_PASSWORD, "reason": "It was my colleague."},
    )
    assert res.status_code == 302 and "/report/status/" in res.location
    with app.app_context():
        appeal = next(i.report for i in moderation.queue() if i.report.category == "appeal")
        assert appeal.owner_id == ids["owner_id"] and appeal.reason == "It was my colleague."
    _act(app, appeal.id, moderator.id, "sanction", "Appeal upheld.", step="none")
    assert (
        client.post(
            "/api/v1/auth/tokens", json={"email": ids["email"], "password": TEST_PASSWORD}
        ).status_code
        == 201
    )
    status = client.get(res.location).text
    assert "The sanction was lifted." in status


def test_appeals_over_the_api_and_who_may_use_the_queue(make_app):
    app = make_app()
    with app.app_context():
        moderator = admin()
        created = factories.user()
        headers = factories.token_for(created)
        user = SimpleNamespace(id=created.id, email=created.email)
    client = app.test_client()
    res = client.post("/api/v1/appeals", json={"reason": "Why?"}, headers=headers)
    assert res.status_code == 409 and res.json["error"] == "nothing_to_appeal"
    with app.app_context():
        target = db.session.get(User, user.id)
        target.sanction, target.sanction_reason = "suspended", "Spam."
        db.session.commit()
    res = client.post("/api/v1/appeals", json={"reason": "I was hacked."}, headers=headers)
    assert res.status_code == 201 and res.json["category"] == "appeal"
    assert res.json["message"].startswith(f"Your appeal is ticket {res.json['ticket_id']}.")
    again = client.post("/api/v1/appeals", json={"reason": "Again."}, headers=headers)
    assert again.status_code == 409 and again.json["error"] == "appeal_open"

    assert client.get("/admin/reports").status_code == 302  # anonymous: log in first
    assert _login(app, user.email).get("/admin/reports").status_code == 403
    queue = _login(app, moderator.email).get("/admin/reports")
    assert queue.status_code == 200 and res.json["ticket_id"] in queue.text
    with app.app_context():
        db.session.get(User, moderator.id).sanction = "warning"  # a moderator's own case
        db.session.commit()
        own = db.session.get(User, moderator.id)
        from webapp.reports import service

        appeal = service.open_appeal(own, "Mine.").report.id
        with pytest.raises(Forbidden, match="Another moderator must decide"):
            moderation.act(appeal, own, "sanction", "Lifting my own.", step="none")


def test_the_queue_puts_urgent_reports_first(make_app, stamped_media):
    app, ids = published_render(make_app, stamped_media)
    client = app.test_client()
    other = _report(client, category="other", reason="?", link="https://example.com/a")
    harmful = _report(client, category="harmful", reason="!", link="https://example.com/b")
    not_me = _report(client, category="not_me", reason="Me.", content_id=ids["content_id"])
    with app.app_context():
        assert [i.report.id for i in moderation.queue()] == [not_me, harmful, other]
        first = moderation.queue()[0]
        assert first.render.id == ids["render_id"] and first.owner.id == ids["owner_id"]
        assert [e.tag for e in first.trail][:2] == ["report:opened", "avatar:frozen"]
