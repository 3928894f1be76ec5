"""A viewer in a real browser watches a live show: the watch page plays the HLS stream
with the vendored hls.js in headless Chromium, says it is an AI avatar, and a typed
question is answered inside the stream (its clip airs)."""

from __future__ import annotations

import time

import pytest

from pipeline.live.local_rtmp import RtmpServer, missing

from ..functional.test_live import ShowThread, _room, live_clips  # noqa: F401
from .test_talk_page import AUTOPLAY, _until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(missing() is not None, reason=missing() or ""),
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),  # the page, not the DB
]


@pytest.fixture
def live_config(stamped_media) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {
        "WATERMARK_KEYS": stamped_media.watermark_keys,
        "SIGNING_DIR": str(stamped_media.settings.signing_dir),
        "AIGC_PRODUCER": "DHFTEST",
        "LIVE_ALLOW_LOOPBACK": True,
    }


def test_the_watch_page_plays_the_show_and_a_typed_question_is_answered(
    live_server,
    open_page,
    live_clips,  # noqa: F811
    tmp_path,
):
    app, base = live_server
    client = app.test_client()
    rtmp = RtmpServer(tmp_path / "nginx").start()
    try:
        headers, room_id, _ = _room(
            app, client, rtmp, live_clips, intro=live_clips.intro, max_seconds=90, qa=True
        )
        res = client.post(f"/api/v1/live-rooms/{room_id}/start", headers=headers)
        assert res.status_code == 202, res.json
        show = ShowThread(app, res.json["job_id"])
        page = open_page(AUTOPLAY)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        responses: list[str] = []
        page.on("response", lambda r: responses.append(f"{r.status} {r.url}"))
        page.goto(res.json["watch_url"].replace("http://localhost", base))
        assert page.locator("#ai-label").inner_text() == "AI生成 · AI-generated"
        assert "not a live person" in page.locator("#ai-notice").inner_text()
        try:
            _until(
                page,
                "() => { const v = document.getElementById('stream');"
                " return v.videoWidth === 360 && v.currentTime > 1.0; }",
                timeout_s=40,
            )
        except AssertionError:
            state = page.evaluate(
                "() => { const v = document.getElementById('stream'); return [v.videoWidth,"
                " v.currentTime, v.readyState, v.networkState, String(v.error && v.error.code),"
                " document.getElementById('status').textContent, typeof window.Hls]; }"
            )
            raise AssertionError((state, errors, responses[-12:])) from None
        page.fill("#comment", "How long does delivery take?")
        page.click("#send")
        _until(page, "() => document.getElementById('status').dataset.comment === 'queued'")
        assert page.locator("#status").inner_text() == (
            "Thanks! The host answers your question in a moment."
        )
        deadline = time.monotonic() + 20
        while True:
            listed = client.get(f"/api/v1/live-rooms/{room_id}/comments", headers=headers).json
            if listed["comments"][0]["status"] == "aired":
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)
        played = page.evaluate("() => document.getElementById('stream').currentTime")
        page.wait_for_timeout(1500)
        assert page.evaluate("() => document.getElementById('stream').currentTime") > played
        assert client.post(f"/api/v1/live-rooms/{room_id}/stop", headers=headers).status_code
        show.join(15)
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        rtmp.stop()
