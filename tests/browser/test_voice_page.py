"""The sentence-recording page in a real browser: record the sentence shown with the
(fake) microphone, send it, and the server's checks move the counter on."""

from __future__ import annotations

import re

import numpy as np
import pytest
from playwright.sync_api import expect

from compliance import media
from pipeline import bundled
from webapp.voice import service

from .. import factories
from ..conftest import TEST_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def fake_microphone(tmp_path):  # type: ignore[no-untyped-def]
    """The shipped voice reading the first prompt, after half a second of silence."""
    audio, rate = bundled.piper_say(service.prompt_list()[0]["text"], deterministic=True)
    speech = media.resample(audio.astype(np.float32) / 32768, rate, 48000)
    wav = tmp_path / "take.wav"
    media.write_wav(wav, np.concatenate([np.zeros(24000, np.float32), speech]), 48000)
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_record_a_sentence_and_the_counter_moves(live_server, open_page, fake_microphone):
    app, base = live_server
    with app.app_context():
        owner = factories.user()
        email, avatar_id = owner.email, factories.avatar(owner).id
    page = open_page(*fake_microphone)
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{base}/avatars/{avatar_id}/voice")
    assert page.inner_text("#sentence") == service.prompt_list()[0]["text"]
    assert page.inner_text("#counter").startswith("0 / ")
    page.click("#record")
    page.wait_for_timeout(500 + 1000 * len(service.prompt_list()[0]["text"].split()) // 2)
    page.click("#stop")
    page.wait_for_selector("#playback:not([hidden])")
    page.click("#send")
    expect(page.locator("#counter")).to_have_text(re.compile(r"^1 / "), timeout=60_000)
    assert "Saved" in page.inner_text("#state")
