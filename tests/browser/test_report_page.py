"""An anonymous visitor reports a video through /report and follows its status link."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from webapp.extensions import db
from webapp.models import Avatar

from ..webapp.reporting import published_render

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def live_server(make_app, stamped_media):  # type: ignore[no-untyped-def]
    """The live server of conftest, on an app that knows the stamped clip as a render."""
    import threading

    from werkzeug.serving import make_server

    app, ids = published_render(make_app, stamped_media, WTF_CSRF_ENABLED=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}", ids
    server.shutdown()
    thread.join(5)


def test_anonymous_report_with_a_file_and_its_status_link(live_server, page, stamped_media):
    app, base, ids = live_server
    page.goto(base + "/")
    page.get_by_role("link", name="Report a video").first.click()
    page.wait_for_url(base + "/report")

    page.check("#category-not_me")
    page.fill("#reason", "That is my face. I never agreed to this video.")
    page.click("#report-submit")  # nothing attached: the browser asks for the category only
    expect(page.locator("#report-error")).to_have_text(
        "Attach the video, or give its content id or a link to where you saw it."
    )
    page.check("#category-not_me")
    page.set_input_files("#file", str(stamped_media.stripped))
    page.fill("#contact", "me@example.org")
    page.click("#report-submit")
    page.wait_for_url(f"{base}/report/status/**", timeout=60_000)

    ticket = page.locator("#ticket-id").inner_text()
    expect(page.locator(".flash.ok")).to_contain_text(
        f"This video was made with Digital Human Factory (content id {ids['content_id']})."
    )
    expect(page.locator("#resolved")).to_contain_text(ids["content_id"])
    expect(page.locator("#status")).to_have_text("open")
    assert page.locator("#due-by").inner_text().endswith(" UTC")
    status_url = page.url

    # the link alone, in a fresh browser context, shows the same ticket and deadline
    other = page.context.browser.new_context().new_page()
    other.goto(status_url)
    expect(other.locator("#ticket-id")).to_have_text(ticket)
    expect(other.locator("#due-by")).to_have_text(page.locator("#due-by").inner_text())
    with app.app_context():
        avatar = db.session.get(Avatar, ids["avatar_id"])
        assert avatar.frozen_reason == f"report {ticket}"
