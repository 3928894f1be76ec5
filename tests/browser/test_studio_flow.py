"""The whole web path in a real browser on a tiny-profile avatar of one real person:
sign up, verify identity, new avatar, the person's live consent (fake camera and
microphone), footage upload, payment, training with live progress, a render with a
colour background, playback, download, and the public verify page confirming the file.

The 100 sentences are the one step not done through the page: Chromium's fake microphone
plays one fixed file, so it cannot read different prompts; the GRID speaker's own takes
go through the same upload API the recording page uses.
"""

from __future__ import annotations

import os
import signal

import pytest

from compliance import media
from compliance.keys import init_keys
from webapp import accounts
from webapp.extensions import db
from webapp.models import Avatar, User

from .. import factories
from ..conftest import SHARED_DATA
from .conftest import FAKE_DEVICE_TIMING, sign_up

pytestmark = [pytest.mark.slow, pytest.mark.browser]
GRID = SHARED_DATA / "grid_s1"
CLIPS = 8
WORKER = {
    "TRAINING_PROFILE": "tiny",
    "RENDER_MAX_WER": "1.0",
    "TRAINING_VIDEO_MIN_SECONDS": "2",
    "VOICE_MIN_SAMPLES": str(CLIPS),
}


@pytest.fixture
def live_config(tmp_path):  # type: ignore[no-untyped-def]
    # the GRID speaker cannot read our statement: its key words are waived here only
    return {
        "VOICE_MIN_SAMPLES": CLIPS,
        "WORK_DIR": str(tmp_path / "work"),
        "CONSENT_STATEMENT_WORDS": 0,
        **FAKE_DEVICE_TIMING,
    }


@pytest.fixture
def fake_devices(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The GRID speaker's genuine consent (his digits on the seeded cues; head turn:
    SYNTHETIC warp) as the camera and microphone, from the moment recording starts."""
    if not GRID.exists():
        pytest.skip("shared data missing")
    recording, challenge = factories.grid_consent(GRID / "heldout", tmp_path)
    factories.fix_challenge(monkeypatch, challenge, factories.GRID_PASSCODE)
    y4m, wav = tmp_path / "face.y4m", tmp_path / "statement.wav"
    media.ffmpeg(["-i", str(recording), "-pix_fmt", "yuv420p", "-an", str(y4m)])
    media.write_wav(wav, media.audio(recording, 48000), 48000)
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        f"--use-file-for-fake-audio-capture={wav}",
    ]


def _voice_takes(app, email: str, avatar_id: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        user = db.session.query(User).filter_by(email=email).one()
        headers = {"Authorization": f"Bearer {accounts.issue_token(user)[0]}"}
    client, accepted = app.test_client(), 0
    for clip in sorted((GRID / "train").glob("*.mpg")):
        wav = tmp_path / f"{clip.stem}.wav"
        media.write_wav(wav, media.audio(clip, 16000), 16000)
        text = clip.with_suffix(".txt").read_text().strip()
        res = client.post(
            f"/api/v1/avatars/{avatar_id}/voice-samples",
            headers=headers,
            **factories.multipart("audio", wav, text=text),
        )
        accepted += res.status_code != 422
        if accepted == CLIPS:
            return


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # one backend: ~3 min
def test_signup_to_download_and_verify(live_server, open_page, fake_devices, monkeypatch, tmp_path):
    app, base = live_server
    init_keys(app.config["SIGNING_DIR"])  # what `dhf init` does
    worker = factories.worker_process(app, "cpu,gpu", **WORKER)
    try:
        _walk(app, base, open_page(*fake_devices), tmp_path)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


def _walk(app, base: str, page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sign_up(page, base, "ada@example.com")
    page.click("#start-kyc")  # the dev provider (TEST MODE) approves at once
    page.goto(base + "/dashboard")
    page.click("#new-avatar-link")
    page.fill("#person", "Ada")
    page.fill("#avatar-name", "Spring host")
    page.click("#create-avatar")
    page.wait_for_selector("#steps")
    assert page.get_attribute('[data-step="identity"]', "class") == "step done"
    avatar_url = page.url
    with app.app_context():
        avatar_id = db.session.query(Avatar).one().id

    # the person's own live statement, recorded by the browser
    page.click("#consent-link")
    page.click("#record")
    page.wait_for_timeout(16_000)  # five GRID sentences, the last cue at about 13 s
    page.click("#stop")
    page.click("#submit")
    page.wait_for_selector("#recorder[data-status]", timeout=90_000)
    assert page.get_attribute("#recorder", "data-status") == "verified", page.inner_text("#state")

    _voice_takes(app, "ada@example.com", avatar_id, tmp_path)
    footage = tmp_path / "footage.mp4"
    media.concat(sorted((GRID / "train").glob("*.mpg"))[:CLIPS], footage)
    page.goto(avatar_url)
    page.set_input_files("#video-file", str(footage))
    page.click("#upload-video")
    page.wait_for_selector('[data-step="video"].done', timeout=120_000)  # checked by the worker

    page.click("#pay-training")
    page.click("#pay-test")
    page.goto(base + "/pricing")
    page.fill("#minutes", "2")
    page.click("#buy-credits")
    page.click("#pay-test")

    page.goto(avatar_url)
    page.click("#start-training")
    page.wait_for_selector("#training-progress progress", timeout=15_000)
    page.wait_for_selector("#quality", timeout=900_000)  # the page reloads when it is ready
    assert "mouth-opening correlation" in page.inner_text("#quality")

    page.fill("#script", "Welcome to our spring sale.")
    page.select_option("#background", "colour")
    page.click("#render")
    page.wait_for_selector("#renders video", timeout=600_000)
    with page.expect_download() as download:
        page.click("#renders a.download")
    out = tmp_path / "render.mp4"
    download.value.save_as(out)

    page.goto(base + "/verify")
    page.set_input_files("#file", str(out))
    page.click("#verify-submit")
    page.wait_for_selector("#result", timeout=120_000)
    assert page.get_attribute("#result", "data-verdict") == "ai_generated_by_us"
    assert page.inner_text("#consent") == "active"
