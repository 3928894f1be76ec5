"""The subject records the statement in a real browser (fake camera and microphone)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from compliance import media
from compliance.consent import statement
from webapp import identity
from webapp.consent import service
from webapp.extensions import db

from .. import factories
from ..conftest import SHARED_DATA
from .conftest import FAKE_DEVICE_TIMING

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def fake_devices(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Camera and microphone files that follow the seeded challenge from the moment the
    page starts recording: the GRID speaker's face (head turn: SYNTHETIC warp of the real
    frames), the shipped voice saying each digit on its cue, then the statement."""
    grid = SHARED_DATA / "grid_s1" / "heldout"
    if not grid.exists():
        pytest.skip("shared data missing")
    factories.fix_challenge(monkeypatch)
    face = tmp_path / "face.mp4"
    media.concat(sorted(grid.glob("*.mpg"))[:8], face)
    digits = iter(factories.FIXED_PASSCODE)
    attempt = {
        "statement": statement("Ada"),
        "challenge": [
            {**c, "digit": next(digits)} if c["cue"] == "say_digit" else c
            for c in factories.fixed_challenge().as_json()
        ],
    }
    recording = factories.consent_recording(face, tmp_path, attempt)
    y4m, wav = tmp_path / "face.y4m", tmp_path / "statement.wav"
    media.ffmpeg(["-i", str(recording), "-pix_fmt", "yuv420p", "-an", str(y4m)])
    media.write_wav(wav, media.audio(recording, 48000), 48000)
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        f"--use-file-for-fake-audio-capture={wav}",
    ]


@pytest.fixture
def live_config():  # type: ignore[no-untyped-def]
    return dict(FAKE_DEVICE_TIMING)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the API tests cover both
def test_subject_records_the_challenge_and_withdraws(live_server, open_page, fake_devices):
    app, base = live_server
    with app.app_context():
        owner = factories.user()
        identity.start(owner)
        _, token = service.create_subject(owner, "Ada", "self")
        db.session.commit()

    page = open_page(*fake_devices)
    page.goto(f"{base}/consent/{token}")
    assert "Withdrawal" in page.inner_text("#notice")
    assert page.inner_text("#passcode") == factories.FIXED_PASSCODE
    assert page.is_hidden("#statement")
    page.click("#record")
    expect(page.locator("#cue")).to_have_text("Say: 4", timeout=5000)
    expect(page.locator("#cue")).to_contain_text("YOUR LEFT", timeout=8000)
    page.wait_for_selector("#statement:not([hidden])", timeout=12_000)
    page.wait_for_timeout(7000)  # the statement (~6 s)
    page.click("#stop")
    page.click("#submit")
    page.wait_for_selector("#recorder[data-status]", timeout=90_000)
    status = page.get_attribute("#recorder", "data-status")
    assert status == "verified", page.inner_text("#state")

    page.goto(f"{base}/consent/{token}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#revoke")
    expect(page.locator("#state")).to_contain_text("withdrew")
