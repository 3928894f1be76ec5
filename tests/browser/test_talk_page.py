"""A visitor in a real browser talks to a Q&A avatar: the AI label is shown and the AI
notice clip plays first (R26), then the idle loop (muted, looping), a typed question plays
its approved clip (the video advances) and then the avatar idles again, a Chinese question
shows its answer as a subtitle, a question spoken into a fake microphone (the bundled
piper voice, heard by Whisper) plays its clip, and the page stops answering once the
consent is withdrawn. The script-tag embed works on an allowed site and not on another."""

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


PLAYING = (
    "() => { const v = document.getElementById('avatar');"
    " return !v.paused && v.currentTime > 0.5; }"
)


IDLING = (
    "() => { const v = document.getElementById('avatar');"
    " return document.getElementById('talk').dataset.playing === 'idle'"
    " && v.loop && v.muted && v.getAttribute('src').includes('/clips/')"
    " && !v.paused && v.currentTime > 0.2; }"
)


def _notice_played(page) -> None:  # type: ignore[no-untyped-def]
    """The conversation's AI notice clip plays first; then (sped up: the test clip is long)
    it ends and the avatar idles: the deployment's idle loop plays, muted, on a loop."""
    _until(page, PLAYING)
    assert page.evaluate("() => document.getElementById('talk').dataset.noticePlayed") is None
    assert page.evaluate("() => document.getElementById('talk').dataset.playing") == "notice"
    page.evaluate("() => { document.getElementById('avatar').playbackRate = 16; }")
    _until(page, "() => document.getElementById('talk').dataset.noticePlayed === '1'")
    _until(page, IDLING)


def test_a_typed_question_plays_the_approved_clip(live_server, open_page, stamped_media):
    app, base = live_server
    shop = "http://shop.example"
    _, _, dep, consent_token = _live(app, app.test_client(), stamped_media, origins=[shop])
    page = open_page(AUTOPLAY)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/talk/{dep['slug']}")
    assert page.locator("#ai-label").inner_text() == "AI-generated"
    assert page.locator("#ai-notice").inner_text().startswith("You are talking to an AI avatar")
    _notice_played(page)

    page.fill("#question", "What time do you open?")
    page.click("#ask")
    _until(page, PLAYING)
    assert page.evaluate("() => document.getElementById('talk').dataset.playing") == "answer"
    assert page.locator("#ai-label").is_visible()  # stays on while the clip plays
    assert page.locator("#subtitle").is_hidden()
    page.evaluate("() => { document.getElementById('avatar').playbackRate = 16; }")
    _until(page, IDLING)  # the answer ended: back to the idle loop

    page.fill("#question", "你们几点开门？")
    page.click("#ask")
    subtitle = page.locator("#subtitle")
    subtitle.wait_for(state="visible")
    assert subtitle.inner_text() in (ITEMS[2]["answer"], FALLBACK["zh"])

    _embedded(page.context.new_page(), base, dep["slug"], shop)
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


def _embedded(page, base: str, slug: str, shop: str) -> None:  # type: ignore[no-untyped-def]
    """The script tag on the allowed site puts the talk page in an iframe, which opens its
    conversation; on another site the script is refused and no frame appears."""
    tag = f'<!doctype html><p>Shop</p><script src="{base}/talk/{slug}/embed.js"></script>'
    for site in (shop, "http://evil.example"):
        page.route(f"{site}/", lambda route: route.fulfill(content_type="text/html", body=tag))
    seen: list = []
    page.on("response", seen.append)
    page.goto(f"{shop}/")
    page.locator("iframe.dhf-avatar").wait_for(state="attached")
    frame = page.frame_locator("iframe.dhf-avatar")
    assert frame.locator("#ai-label").inner_text() == "AI-generated"
    frame.locator("#talk[data-conversation='ready']").wait_for(state="attached")
    loaded = {r.url.split("?")[0]: r.status for r in seen}
    assert loaded[f"{base}/talk/{slug}/embed.js"] == 200 and loaded[f"{base}/talk/{slug}"] == 200
    seen.clear()
    page.goto("http://evil.example/")
    page.wait_for_load_state("load")
    assert {r.url.split("?")[0]: r.status for r in seen}[f"{base}/talk/{slug}/embed.js"] == 403
    assert page.locator("iframe").count() == 0
    page.close()
