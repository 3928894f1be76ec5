"""A visitor in a real browser talks to a Q&A avatar: the AI label and notice are shown,
a typed question plays its approved clip (the video advances), a Chinese question shows
its answer as a subtitle, and the page stops answering once the consent is withdrawn."""

from __future__ import annotations

import time

import pytest

from ..webapp.test_qa_api import FALLBACK, ITEMS, _live

pytestmark = [pytest.mark.slow, pytest.mark.browser]

AUTOPLAY = "--autoplay-policy=no-user-gesture-required"


def _until(page, script: str, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``script`` with page.evaluate (wait_for_function would eval under our CSP)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(script):
        assert time.monotonic() < deadline, f"timed out waiting for {script}"
        page.wait_for_timeout(100)


def test_a_typed_question_plays_the_approved_clip(live_server, open_page, stamped_media):
    app, base = live_server
    _, _, dep, consent_token = _live(app, app.test_client(), stamped_media)
    page = open_page(AUTOPLAY)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/talk/{dep['slug']}")
    assert page.locator("#ai-label").inner_text() == "AI-generated"
    assert page.locator("#ai-notice").inner_text().startswith("You are talking to an AI avatar")
    _until(page, "() => document.getElementById('avatar').readyState >= 1")  # the idle clip

    page.fill("#question", "What time do you open?")
    page.click("#ask")
    _until(
        page,
        "() => { const v = document.getElementById('avatar');"
        " return !v.paused && v.currentTime > 0.5; }",
    )
    assert page.locator("#ai-label").is_visible()  # stays on while the clip plays
    assert page.locator("#subtitle").is_hidden()

    page.fill("#question", "你们几点开门？")
    page.click("#ask")
    subtitle = page.locator("#subtitle")
    subtitle.wait_for(state="visible")
    assert subtitle.inner_text() in (ITEMS[2]["answer"], FALLBACK["zh"])

    client = app.test_client()
    assert client.post(f"/api/v1/consent/{consent_token}/revoke").status_code == 200
    page.fill("#question", "What time do you open?")
    page.click("#ask")
    status = page.locator("#status")
    _until(page, "() => document.getElementById('status').textContent.length > 1")
    assert status.inner_text() == (
        "This conversation has ended: the person shown withdrew their consent."
    )
    assert page.locator("#ask").is_disabled()
    assert not [e for e in errors if "Content Security Policy" in e], errors
