"""Live rooms through the API (issue 19), without streaming (tests/functional/test_live.py
streams): planning renders every clip through the ordinary render path, output URLs are
checked on the server, comments are length-limited, moderated, matched and rate-limited."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from compliance.stamping import QA_ANSWER, STANDARD
from webapp import safe_http
from webapp.billing import ledger
from webapp.extensions import db
from webapp.live import control
from webapp.models import (
    AuditEvent,
    CreditEntry,
    Job,
    LiveLogEntry,
    LiveRoom,
    Order,
    Render,
    User,
)
from webapp.studio.tasks import stamping_profile

from .. import factories
from ..conftest import TEST_PASSWORD

INGEST = "rtmp://live.example.com/app/sk_live_0123456789abcdef"


@pytest.fixture(autouse=True)
def public_dns(monkeypatch):  # type: ignore[no-untyped-def]
    """live.example.com resolves to a public address; the rest as written."""
    real = safe_http.resolve

    def resolve(host: str, port: int) -> list[str]:
        return ["93.184.215.14"] if host == "live.example.com" else real(host, port)

    monkeypatch.setattr(safe_http, "resolve", resolve)


def _owner(app, credits: int = 600):  # type: ignore[no-untyped-def]
    with app.app_context():
        owner = factories.user()
        subject, _ = factories.consented_subject(owner)
        avatar = factories.avatar(owner, subject)
        avatar.status = "ready"
        order = Order(
            owner_id=owner.id,
            item="render_credits",
            status="paid",
            quantity=credits // 60,
            amount_cents=100,
        )
        db.session.add(order)
        db.session.flush()
        ledger.grant(order)
        db.session.commit()
        return factories.token_for(owner), avatar.id


def _body(avatar_id: str, **extra):  # type: ignore[no-untyped-def]
    return {
        "avatar_id": avatar_id,
        "name": "Spring sale",
        "segments": [
            {"title": "Intro", "script": "Welcome to our spring sale."},
            {"title": "Kettle", "script": "This kettle boils a litre in two minutes."},
        ],
        "outputs": [INGEST],
        **extra,
    }


def test_planning_a_show_renders_every_clip_through_the_render_path(app, client):
    headers, avatar_id = _owner(app)
    res = client.post("/api/v1/live-rooms", json=_body(avatar_id), headers=headers)
    assert res.status_code == 202, res.json
    room = res.json
    assert room["status"] == "rendering"
    assert room["outputs"] == ["rtmp://live.example.com/app/****cdef"]  # the key stays secret
    assert [s["status"] for s in room["segments"]] == ["queued", "queued"]
    assert room["idle"]["status"] == "queued"
    with app.app_context():
        renders = db.session.scalars(select(Render).order_by(Render.created_at)).all()
        # the notice, the idle loop and both segments: billed, moderated, stamped
        assert len(renders) == 4
        assert all(r.credits_reserved > 0 for r in renders)
        assert db.session.scalar(select(func.count(Job.id)).where(Job.kind == "render")) == 4
        # the notice clip has every label; the rest air between notices, without the spoken one
        purposes = {r.id: r.options["purpose"] for r in renders}
        assert purposes.pop(room["notice"]["render_id"]) == "live_notice"
        assert set(purposes.values()) == {"live_clip"}
        assert stamping_profile(renders[1]) == QA_ANSWER
        assert stamping_profile(db.session.get(Render, room["notice"]["render_id"])) == STANDARD
    res = client.post(f"/api/v1/live-rooms/{room['id']}/start", headers=headers)
    assert res.status_code == 409 and res.json["error"] == "not_ready"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://live.example.com/app/key", "rtmp:// or rtmps://"),
        ("file:///etc/passwd", "rtmp:// or rtmps://"),
        ("rtmp://user:pw@live.example.com/app/key", "user name or password"),
        ("rtmp://live.example.com/", "whole ingest URL"),
        ("rtmp://127.0.0.1/app/key", "loopback"),
        ("rtmp://10.1.2.3/app/key", "private"),
        ("rtmp://169.254.169.254/app/key", "link-local"),
        ("rtmp://[::ffff:127.0.0.1]/app/key", "loopback"),
        ("rtmp://0x7f000001/app/key", "loopback"),
        ("rtmp://live.example.com/app/" + "k" * 500, "at most 500"),
        ("rtmp://live.example.com/app/k ey", "spaces"),
    ],
)
def test_output_urls_are_checked_on_the_server(app, client, url, why):
    headers, avatar_id = _owner(app)
    res = client.post("/api/v1/live-rooms", json=_body(avatar_id, outputs=[url]), headers=headers)
    assert res.status_code == 422, res.json
    assert res.json["error"] == "bad_output_url"
    assert why in res.json["message"]
    with app.app_context():
        assert db.session.scalar(select(func.count(LiveRoom.id))) == 0
        assert db.session.scalar(select(func.count(Render.id))) == 0  # nothing rendered


def test_a_script_against_policy_refuses_the_whole_plan(app, client):
    headers, avatar_id = _owner(app)
    body = _body(avatar_id)
    body["segments"].append({"script": "Double your money: guaranteed returns for every viewer."})
    res = client.post("/api/v1/live-rooms", json=body, headers=headers)
    assert res.status_code == 422
    assert res.json["error"].startswith("moderation_")
    assert res.json["message"].startswith("Segment 3 falls under our policy")
    with app.app_context():
        assert db.session.scalar(select(func.count(Render.id))) == 0


def test_not_enough_credits_for_the_plan(app, client):
    headers, avatar_id = _owner(app, credits=0)
    res = client.post("/api/v1/live-rooms", json=_body(avatar_id), headers=headers)
    assert res.status_code == 402 and res.json["error"] == "insufficient_credits", res.json


def test_rooms_are_private_to_their_owner(app, client):
    headers, avatar_id = _owner(app)
    room = client.post("/api/v1/live-rooms", json=_body(avatar_id), headers=headers).json
    other, _ = _owner(app)
    assert client.get(f"/api/v1/live-rooms/{room['id']}", headers=other).status_code == 404
    assert client.post(f"/api/v1/live-rooms/{room['id']}/start", headers=other).status_code == 404
    assert (
        client.post(
            f"/api/v1/live-rooms/{room['id']}/comments", json={"text": "hi"}, headers=other
        ).status_code
        == 404
    )


def _live_room(app, client):  # type: ignore[no-untyped-def]
    """A room marked live (no stream runs here), for the comment rules."""
    headers, avatar_id = _owner(app)
    room = client.post("/api/v1/live-rooms", json=_body(avatar_id), headers=headers).json
    with app.app_context():
        row = db.session.get(LiveRoom, room["id"])
        row.status = "live"
        db.session.commit()
    return headers, room


def test_comments_are_limited_moderated_and_listed_for_the_operator(app, client):
    headers, room = _live_room(app, client)
    url = f"/api/v1/live-rooms/{room['id']}/comments"
    long = client.post(url, json={"text": "x" * 301}, headers=headers)
    assert long.status_code == 422 and long.json["error"] == "too_long"
    bad = client.post(
        url, json={"text": "double your money with guaranteed returns"}, headers=headers
    )
    assert bad.status_code == 201 and bad.json["status"] == "rejected"
    plain = client.post(url, json={"text": "Is the kettle blue?"}, headers=headers)
    assert plain.json["status"] == "unmatched"  # no Q&A set attached: the operator answers
    listed = client.get(f"{url}?status=unmatched", headers=headers).json["comments"]
    assert [c["text"] for c in listed] == ["Is the kettle blue?"]
    slug = room["watch_url"].rsplit("/", 1)[1]
    watch = client.post(f"/api/v1/live/{slug}/comments", json={"text": "hello"})
    assert watch.status_code == 201 and watch.json["status"] == "unmatched"


def test_comment_ingest_is_rate_limited_per_room(make_app):
    app = make_app(LIVE_RATELIMIT_COMMENTS="3 per minute")
    client = app.test_client()
    headers, room = _live_room(app, client)
    url = f"/api/v1/live-rooms/{room['id']}/comments"
    codes = [
        client.post(url, json={"text": f"q{n}"}, headers=headers).status_code for n in range(4)
    ]
    assert codes == [201, 201, 201, 429]


def test_comments_need_a_live_show(app, client):
    headers, avatar_id = _owner(app)
    room = client.post("/api/v1/live-rooms", json=_body(avatar_id), headers=headers).json
    res = client.post(
        f"/api/v1/live-rooms/{room['id']}/comments", json={"text": "hi"}, headers=headers
    )
    assert res.status_code == 409 and res.json["error"] == "not_live"


def test_the_watch_page_says_it_is_an_ai_and_hides_the_stream_when_off_air(app, client):
    headers, avatar_id = _owner(app)
    room = client.post("/api/v1/live-rooms", json=_body(avatar_id), headers=headers).json
    slug = room["watch_url"].rsplit("/", 1)[1]
    page = client.get(f"/live/{slug}")
    assert page.status_code == 200
    assert "AI生成 · AI-generated" in page.get_data(as_text=True)
    assert "not a live person" in page.get_data(as_text=True)
    assert client.get(f"/live/{slug}/hls/index.m3u8").status_code == 403
    assert client.get(f"/live/{slug}/hls/..%2Fclips").status_code == 404


def _log(app, room_id: str) -> list[tuple[str, str | None, dict]]:  # type: ignore[type-arg]
    with app.app_context():
        rows = db.session.scalars(
            select(LiveLogEntry).where(LiveLogEntry.room_id == room_id).order_by(LiveLogEntry.id)
        )
        return [(e.tag, e.actor_id, dict(e.data)) for e in rows]


def test_an_operator_line_is_moderated_then_rendered_billed_and_logged(app, client):
    headers, room = _live_room(app, client)
    url = f"/api/v1/live-rooms/{room['id']}/lines"
    with app.app_context():
        owner_id = db.session.get(LiveRoom, room["id"]).owner_id
        renders_before = db.session.scalar(select(func.count(Render.id)))
    bad = client.post(url, json={"text": "Double your money: guaranteed returns!"}, headers=headers)
    assert bad.status_code == 422 and bad.json["error"].startswith("moderation_"), bad.json
    long = client.post(url, json={"text": "x" * 301}, headers=headers)
    assert long.status_code == 422 and long.json["error"] == "too_long"
    res = client.post(url, json={"text": "The kettle is also sold in blue."}, headers=headers)
    assert res.status_code == 201, res.json
    line = res.json
    assert line["status"] == "rendering" and line["operator_id"] == owner_id
    assert line["airs_after"] is not None  # the console's estimate: ready, then next boundary
    with app.app_context():
        # only the allowed line became a render: on the gpu queue, credits held, no notice
        assert db.session.scalar(select(func.count(Render.id))) == renders_before + 1
        render = db.session.get(Render, line["render_id"])
        assert render.options["purpose"] == "live_clip" and render.credits_reserved > 0
        job = db.session.scalar(select(Job).where(Job.target_id == render.id))
        assert job.kind == "render" and job.queue == "gpu"
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.tag == "live:line").order_by(AuditEvent.id)
        ).all()
        assert [(e.actor_id, e.data["status"]) for e in events] == [
            (owner_id, "rejected"),
            (owner_id, "rendering"),
        ]
    listed = client.get(url, headers=headers).json["lines"]
    assert [x["text"] for x in listed] == ["The kettle is also sold in blue."]
    # the profile is the server's: a client asking for the notice-free one gets every label
    body = {"avatar_id": room["avatar_id"], "script": "Hello.", "purpose": "live_clip"}
    plain = client.post("/api/v1/renders", headers=headers, json=body)
    with app.app_context():
        assert stamping_profile(db.session.get(Render, plain.json["id"])) == STANDARD
    # and a live clip is never downloaded on its own (it airs after the show's notice)
    with app.app_context():
        db.session.get(Render, line["render_id"]).status = "ready"
        db.session.commit()
    got = client.get(f"/api/v1/renders/{line['render_id']}/download", headers=headers)
    assert got.status_code == 409 and got.json["error"] == "qa_answer_clip"
    log = client.get(f"/api/v1/live-rooms/{room['id']}/log", headers=headers).json
    assert [(e["event"], e["actor_id"]) for e in log["log"]][:2] == [
        ("live:line", owner_id),
        ("live:line", owner_id),
    ]
    assert log["credits"]["minute_credits"] == 30

    # a real, verified person drives the show: no KYC, no lines (checked on the server)
    with app.app_context():
        db.session.get(User, owner_id).kyc_status = "pending"
        db.session.commit()
    res = client.post(url, json={"text": "Hello again."}, headers=headers)
    assert res.status_code == 403 and res.json["error"] == "kyc_required"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the page, not the database
def test_the_console_is_the_verified_owners_page(app, client):
    headers, room = _live_room(app, client)
    with app.app_context():
        owner = db.session.get(User, db.session.get(LiveRoom, room["id"]).owner_id)
        email = owner.email
    page = f"/live-rooms/{room['id']}/console"
    assert client.get(page).status_code == 302  # signed-in only
    assert client.post("/login", data={"email": email, "password": TEST_PASSWORD}).status_code
    assert client.get(page).status_code == 200
    res = client.post(f"{page}/lines", json={"text": "Free shipping today."})
    assert res.status_code == 201 and res.json["status"] == "rendering", res.json
    state = client.get(f"/live-rooms/{room['id']}/console.json").json
    assert [x["text"] for x in state["lines"]] == ["Free shipping today."]
    assert state["status"] == "live" and state["credits"]["low"] is False
    other = client.application.test_client()
    with app.app_context():
        stranger = factories.user().email
    other.post("/login", data={"email": stranger, "password": TEST_PASSWORD})
    assert other.get(page).status_code == 404
    assert other.post(f"{page}/lines", json={"text": "hi"}).status_code == 404


def test_live_minutes_are_paid_per_started_minute_once_with_a_warning_first(app, client):
    headers, avatar_id = _owner(app)
    room = client.post("/api/v1/live-rooms", json=_body(avatar_id), headers=headers).json
    with app.app_context():
        row = db.session.get(LiveRoom, room["id"])
        have = ledger.balance(row.owner_id)  # what the renders left: set it to 3 minutes
        db.session.add(
            CreditEntry(owner_id=row.owner_id, delta=90 - have, kind="refund", idem_key="t:90")
        )
        db.session.commit()
        meter = control.ShowBilling(row, "job1")
        assert meter.tick(0.0) is None  # minute 0 paid as the show goes on air
        assert ledger.balance(row.owner_id) == 60
        assert meter.tick(59.9) is None and ledger.balance(row.owner_id) == 60
        assert meter.tick(61.0) is None and meter.tick(125.0) is None
        assert ledger.balance(row.owner_id) == 0
        # a restarted show job pays nothing twice
        assert control.ShowBilling(row, "job1").tick(125.0) is None
        assert ledger.balance(row.owner_id) == 0
        assert meter.tick(180.0) == "credits"  # minute 3 cannot be paid: the show stops
        assert ledger.balance(row.owner_id) == 0
        live = db.session.scalars(select(CreditEntry.delta).where(CreditEntry.kind == "live")).all()
        assert live == [-30, -30, -30]
        db.session.commit()
    # the warning came with the first minute (60 s left < 5 minutes' worth), once
    warnings = [e for e in _log(app, room["id"]) if e[0] == "live:credits-low"]
    assert len(warnings) == 1 and warnings[0][2]["minutes_left"] == 2
    # every clip ready, but no credits for a first minute: the show does not start
    with app.app_context():
        for render in db.session.scalars(select(Render)):
            render.status, render.output_blob_id = "ready", "blob"
        db.session.commit()
    res = client.post(f"/api/v1/live-rooms/{room['id']}/start", headers=headers)
    assert res.status_code == 402 and res.json["error"] == "insufficient_credits", res.json
