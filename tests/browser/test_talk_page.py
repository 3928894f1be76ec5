"""A visitor in a real browser talks to a Q&A avatar: the AI label is shown and the AI
notice clip plays first (R26), then the idle loop (muted, looping), a typed question plays
its approved clip (the video advances) and then the avatar idles again, a Chinese question
shows its answer as a subtitle, a question spoken into a fake microphone (the bundled
piper voice, heard by Whisper) plays its clip, and the page stops answering once the
consent is withdrawn. The script-tag embed works on an allowed site and not on another."""

from __future__ import annotations

import time

import pytest

from compliance import media

from ..webapp.test_qa_api import FALLBACK, ITEMS, _live, question_wav

pytestmark = [pytest.mark.slow, pytest.mark.browser]

AUTOPLAY = "--autoplay-policy=no-user-gesture-required"
# The embedding test's shop (a routed public name) loads the script from 127.0.0.1, which
# Chromium's private-network protection blocks for http pages; real sites embed a public host.
LOOPBACK_FROM_PUBLIC = (
    "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
    "LocalNetworkAccessChecks"
)


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


ANSWERING = (  # an answer clip plays (the idle loop plays too: PLAYING alone is not enough)
    "() => { const v = document.getElementById('avatar');"
    " return document.getElementById('talk').dataset.playing === 'answer'"
    " && !v.paused && v.currentTime > 0.5; }"
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
    page = open_page(AUTOPLAY, LOOPBACK_FROM_PUBLIC)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/talk/{dep['slug']}")
    assert page.locator("#ai-label").inner_text() == "AI-generated"
    assert page.locator("#ai-notice").inner_text().startswith("You are talking to an AI avatar")
    _notice_played(page)

    page.fill("#question", "What time do you open?")
    page.click("#ask")
    _until(page, ANSWERING, 60.0)  # the first question loads the matcher's model
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
    page.on("response", lambda response: seen.append(response))
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
    refused = {r.url.split("?")[0]: r.status for r in seen}.get(f"{base}/talk/{slug}/embed.js")
    assert refused in (403, None)  # Chromium may block the refused script's response (ORB)
    assert page.locator("iframe").count() == 0  # the load event came after the script's turn
    page.close()


@pytest.fixture
def spoken_question(tmp_path):  # type: ignore[no-untyped-def]
    """A question said by the bundled piper voice (16-bit PCM WAV, silence around it)."""
    return question_wav("What are your opening hours?", tmp_path / "question.wav", 0.4)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the API tests cover both
def test_a_spoken_question_plays_the_approved_clip(
    live_server, open_page, stamped_media, spoken_question
):
    app, base = live_server
    _, _, dep, _ = _live(app, app.test_client(), stamped_media)
    page = open_page(
        AUTOPLAY,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={spoken_question}",
    )
    page.goto(f"{base}/talk/{dep['slug']}")
    _notice_played(page)
    seconds = media.probe(spoken_question).duration_s
    page.locator("#speak").hover()
    page.mouse.down()  # hold to speak: the fake microphone plays the question (it loops)
    page.wait_for_timeout(int(1000 * seconds) + 600)
    with page.expect_response(lambda r: r.url.endswith("/ask-audio"), timeout=30_000) as got:
        page.mouse.up()
    assert got.value.ok, got.value.text()
    heard = got.value.json()
    _until(page, ANSWERING, 30.0)
    assert "opening hours" in heard["question"].lower(), heard
    assert heard["answer"]["text"] == ITEMS[0]["answer"]
    src = page.evaluate("() => document.getElementById('avatar').getAttribute('src')")
    assert src == heard["answer"]["url"]
