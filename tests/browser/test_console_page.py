"""The operator's console in a real browser: a signed-in, KYC-verified owner sees the
comments and the unanswered list, types a line (sent with the session's CSRF token), sees
it rendering with when it will air, and a line against policy is refused with the reason.
No stream runs here (tests/functional/test_live.py airs typed lines)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from webapp.billing import ledger
from webapp.extensions import db
from webapp.models import LiveRoom, Order

from .. import factories
from ..conftest import TEST_PASSWORD

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),  # the page, not the DB
]


def _live_room(app, client):  # type: ignore[no-untyped-def]
    with app.app_context():
        owner = factories.user()
        subject, _ = factories.consented_subject(owner)
        avatar = factories.avatar(owner, subject)
        avatar.status = "ready"
        order = Order(
            owner_id=owner.id, item="render_credits", status="paid", quantity=10, amount_cents=1
        )
        db.session.add(order)
        db.session.flush()
        ledger.grant(order)
        db.session.commit()
        headers, email, avatar_id = factories.token_for(owner), owner.email, avatar.id
    body = {
        "avatar_id": avatar_id,
        "name": "Spring sale",
        "segments": [{"title": "Intro", "script": "Welcome to our spring sale."}],
    }
    room = client.post("/api/v1/live-rooms", json=body, headers=headers).json
    with app.app_context():
        db.session.get(LiveRoom, room["id"]).status = "live"  # no stream runs here
        db.session.commit()
    return headers, email, room


def test_the_console_shows_comments_and_sends_a_typed_line(live_server, page):
    app, base = live_server
    client = app.test_client()
    headers, email, room = _live_room(app, client)
    comments = f"/api/v1/live-rooms/{room['id']}/comments"
    assert client.post(comments, json={"text": "Is it blue?"}, headers=headers).status_code == 201

    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(base + "/dashboard")
    page.goto(room["console_url"].replace("http://localhost", base))
    expect(page.locator("#unmatched li")).to_have_text(["viewer: Is it blue?"])
    expect(page.locator("#show-status")).to_have_text("live")
    expect(page.locator("#credits")).to_contain_text("live minutes")

    page.fill("#line", "Double your money: guaranteed returns!")
    page.click("#say")
    expect(page.locator("#line-status")).to_contain_text("falls under our policy")
    page.fill("#line", "Yes, and in green too.")
    page.click("#say")
    expect(page.locator("#line-status")).to_contain_text("Rendering your line")
    line = page.locator("#lines li").first
    expect(line).to_contain_text("Yes, and in green too. · rendering, ready in about")
    expect(line).to_contain_text("then airs at the next boundary")
    expect(page.locator("#log li").first).to_contain_text("live:line by ")
    lines = client.get(f"/api/v1/live-rooms/{room['id']}/lines", headers=headers).json["lines"]
    assert [(x["text"], x["status"]) for x in lines] == [("Yes, and in green too.", "rendering")]
