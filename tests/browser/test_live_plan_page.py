"""The owner plans a show in a real browser (issue 19): the plan form (with "Add a
segment" and a product-card picture), the room page following its clips rendering
(polled, reloaded when the show becomes ready), Go live and Stop. The stream itself is
tested in tests/functional/test_live.py and tests/browser/test_watch_page.py."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select

from webapp.extensions import db
from webapp.models import Avatar, LiveRoom, Render, User

from ..conftest import TEST_PASSWORD
from ..webapp.test_live_api import _owner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),  # the pages, not the DB
]


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (240, 160), (0, 170, 60)).save(out, "PNG")
    return out.getvalue()


def test_plan_a_show_wait_for_its_clips_go_live_and_stop(live_server, page):
    app, base = live_server
    _, avatar_id = _owner(app)
    with app.app_context():
        email = db.session.get(User, db.session.get(Avatar, avatar_id).owner_id).email
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.click("#live-link")
    page.click("#plan-show")
    page.fill("#show-name", "Spring sale")
    page.click("#add-segment")  # a fourth row, its picture field numbered for the server
    rows = page.locator("#segments .segment")
    assert rows.count() == 4
    assert rows.nth(3).locator("input[type=file]").get_attribute("name") == "card_image_3"
    rows.nth(0).locator("textarea").fill("Welcome to our spring sale.")
    rows.nth(3).locator("[name=segment_title]").fill("Kettle")
    rows.nth(3).locator("textarea").fill("This kettle boils a litre in two minutes.")
    rows.nth(3).locator("[name=card_title]").fill("Electric kettle")
    rows.nth(3).locator("[name=card_price]").fill("¥199")
    rows.nth(3).locator("input[type=file]").set_input_files(
        {"name": "kettle.png", "mimeType": "image/png", "buffer": _png()}
    )
    page.click("#create-show")
    page.wait_for_selector("#room-status")
    assert page.inner_text("#room-status") == "rendering"
    assert "Card: Electric kettle · ¥199 · with picture" in page.inner_text("#plan")
    assert page.is_disabled("#start-show")
    with app.app_context():  # the notice, the idle clip and the first segment are rendered
        slug = db.session.scalars(select(LiveRoom.slug)).one()
        for render in db.session.scalars(select(Render).order_by(Render.created_at)).all()[:3]:
            render.status, render.output_blob_id = "ready", f"blob-{render.id}"
        db.session.commit()
    # the page notices by itself (status.json) and reloads with Go live enabled
    page.wait_for_selector("#start-show:not([disabled])", timeout=10_000)
    assert page.inner_text("#room-status") == "ready"
    page.click("#start-show")
    page.wait_for_selector("#stop-show")
    assert "Going live" in page.inner_text("main") and page.inner_text("#room-status") == "live"
    assert page.get_attribute("#watch-link", "href").endswith(f"/live/{slug}")
    page.click("#stop-show")
    page.wait_for_selector("#start-show")
    assert page.inner_text("#room-status") == "ended"
