"""The owner's live-show pages (issue 19): plan a show, follow its clips rendering, start
and stop it, with the server's refusals shown as messages (the service layer is the API's;
tests/webapp/test_live_api.py covers its rules in depth)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Job, LiveRoom, LiveSegment, Render

from ..conftest import TEST_PASSWORD
from .test_live_api import _owner, public_dns  # noqa: F401 (the fixture is used)

INGEST = "rtmp://live.example.com/app/sk_live_0123456789abcdef"

# the pages call the API's service layer, whose tests run on both database engines
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _signed_in(app, client) -> str:  # type: ignore[no-untyped-def]
    """An owner with a trained avatar and credits, signed in; the avatar's id."""
    _, avatar_id = _owner(app)
    with app.app_context():
        from webapp.models import Avatar, User

        owner = db.session.get(User, db.session.get(Avatar, avatar_id).owner_id)
        email = owner.email
    res = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert res.status_code == 302
    return avatar_id


def _plan(avatar_id: str, **extra: str) -> dict[str, object]:
    return {
        "avatar_id": avatar_id,
        "name": "Spring sale",
        "segment_title": ["Intro", "Kettle", ""],
        "segment_script": ["Welcome to our spring sale.", "This kettle boils fast.", ""],
        "idle_script": "Ask us anything.",
        "max_minutes": "30",
        "starts_at": "",
        "outputs": INGEST,
        **extra,
    }


def test_plan_start_and_stop_a_show_from_the_pages(app, client):
    avatar_id = _signed_in(app, client)
    form = client.get("/studio/live/new").get_data(as_text=True)
    assert f'value="{avatar_id}"' in form and form.count('name="segment_script"') == 3
    page = client.post("/studio/live/new", data=_plan(avatar_id), follow_redirects=True)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Show planned" in html
    with app.app_context():
        room = db.session.scalars(select(LiveRoom)).one()
        segments = db.session.scalars(select(LiveSegment).order_by(LiveSegment.position)).all()
        assert [s.title for s in segments] == ["Intro", "Kettle"]  # the empty row is ignored
        assert room.max_seconds == 1800 and room.outputs == [INGEST]
        renders = [room.notice_render_id, room.idle_render_id, *(s.render_id for s in segments)]
        room_id, slug = room.id, room.slug
    assert "sk_live_0123456789abcdef" not in html and "****cdef" in html  # the key is secret
    assert f"/live/{slug}" in html and 'id="start-show"' in html and "disabled" in html
    # not ready yet: the server's refusal comes back as a message with its code
    page = client.post(f"/studio/live/{room_id}/start", follow_redirects=True)
    assert "(not_ready)" in page.get_data(as_text=True)
    status = client.get(f"/studio/live/{room_id}/status.json").json
    assert status["status"] == "rendering" and status["idle"]["status"] == "queued"
    with app.app_context():  # the render worker finished the notice, idle and first segment
        for render_id in renders[:3]:
            render = db.session.get(Render, render_id)
            render.status, render.output_blob_id = "ready", "blob-" + render_id
        db.session.commit()
    status = client.get(f"/studio/live/{room_id}/status.json").json
    assert status["status"] == "ready" and [s["status"] for s in status["segments"]] == [
        "ready",
        "queued",
    ]
    page = client.post(f"/studio/live/{room_id}/start", follow_redirects=True)
    html = page.get_data(as_text=True)
    assert "Going live" in html and 'id="stop-show"' in html
    with app.app_context():
        job = db.session.scalars(select(Job).where(Job.kind == "live_show")).one()
        assert job.target_id == room_id
    page = client.post(f"/studio/live/{room_id}/stop", follow_redirects=True)
    assert "Stopping the show" in page.get_data(as_text=True)
    listing = client.get("/studio/live").get_data(as_text=True)
    assert "Spring sale" in listing and 'data-status="ended"' in listing


def test_refusals_keep_the_form_and_say_why(app, client):
    avatar_id = _signed_in(app, client)
    bad = _plan(avatar_id, outputs="rtmp://127.0.0.1/app/key")
    res = client.post("/studio/live/new", data=bad)
    html = res.get_data(as_text=True)
    assert res.status_code == 422 and "(bad_output_url)" in html and "loopback" in html
    assert "This kettle boils fast." in html  # what was typed is still there
    res = client.post("/studio/live/new", data=_plan(avatar_id, segment_script=["", "", ""]))
    html = res.get_data(as_text=True)  # a titled segment without a script
    assert res.status_code == 422 and "(missing_fields)" in html and "script of segment 1" in html
    with app.app_context():
        assert db.session.scalars(select(LiveRoom)).first() is None  # nothing half-written


def test_settings_are_saved_and_the_stream_key_kept(app, client):
    avatar_id = _signed_in(app, client)
    client.post("/studio/live/new", data=_plan(avatar_id))
    with app.app_context():
        room_id = db.session.scalars(select(LiveRoom.id)).one()
    page = client.post(
        f"/studio/live/{room_id}",
        data={"name": "Summer sale", "max_minutes": "5", "starts_at": "2030-01-02T18:30"},
        follow_redirects=True,
    )
    html = page.get_data(as_text=True)
    assert "Saved." in html and re.search(r"starts automatically at 2030-01-02 18:30 UTC", html)
    with app.app_context():
        room = db.session.get(LiveRoom, room_id)
        assert (room.name, room.max_seconds, room.outputs) == ("Summer sale", 300, [INGEST])
    page = client.post(
        f"/studio/live/{room_id}", data={"name": "Summer sale", "max_minutes": "999"}
    )
    assert "(bad_field)" in client.get(f"/studio/live/{room_id}").get_data(as_text=True)


def test_rooms_are_private_to_their_owner(app, client):
    avatar_id = _signed_in(app, client)
    client.post("/studio/live/new", data=_plan(avatar_id))
    with app.app_context():
        room_id = db.session.scalars(select(LiveRoom.id)).one()
    other = app.test_client()
    _signed_in(app, other)
    for path in ("", "/status.json"):
        assert other.get(f"/studio/live/{room_id}{path}").status_code == 404
    assert other.post(f"/studio/live/{room_id}/start").status_code == 404
