"""The subject records the statement in a real browser (fake camera and microphone)."""

from __future__ import annotations

import numpy as np
import pytest

from compliance import media
from compliance.consent import statement
from pipeline import bundled
from webapp import identity
from webapp.consent import service
from webapp.extensions import db

from .. import factories
from ..conftest import SHARED_DATA

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def fake_devices(tmp_path):  # type: ignore[no-untyped-def]
    grid = SHARED_DATA / "grid_s1" / "heldout"
    if not grid.exists():
        pytest.skip("shared data missing")
    joined, y4m, wav = tmp_path / "face.mp4", tmp_path / "face.y4m", tmp_path / "statement.wav"
    media.concat(sorted(grid.glob("*.mpg"))[:3], joined)
    media.ffmpeg(["-i", str(joined), "-pix_fmt", "yuv420p", "-an", str(y4m)])
    audio, rate = bundled.piper_say(statement("Ada", "4719"), deterministic=True)
    speech = media.resample(audio.astype(np.float32) / 32768, rate, 48000)
    media.write_wav(wav, np.concatenate([np.zeros(24000, np.float32), speech]), 48000)
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        f"--use-file-for-fake-audio-capture={wav}",
    ]


def test_subject_records_and_withdraws(live_server, open_page, fake_devices, monkeypatch):
    app, base = live_server
    monkeypatch.setattr(service, "new_passcode", lambda: "4719")
    with app.app_context():
        owner = factories.user()
        identity.start(owner)
        _, token = service.create_subject(owner, "Ada", "self")
        db.session.commit()

    page = open_page(*fake_devices)
    page.goto(f"{base}/consent/{token}")
    assert "Withdrawal" in page.inner_text("#notice")
    assert page.inner_text("#statement").endswith("My code is 4 7 1 9.")
    page.click("#record")
    page.wait_for_timeout(9000)  # half a second of silence, then the statement (~7 s)
    page.click("#stop")
    page.click("#submit")
    page.wait_for_selector("#recorder[data-status]", timeout=60_000)
    status = page.get_attribute("#recorder", "data-status")
    assert status == "verified", page.inner_text("#state")

    page.goto(f"{base}/consent/{token}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#revoke")
    page.wait_for_function("document.getElementById('state').textContent.includes('withdrew')")
