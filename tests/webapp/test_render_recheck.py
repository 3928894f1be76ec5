"""The speech gate before a render is released: Whisper hears the approved script after the
spoken AI notice; a render that says something else is over the quarantine threshold."""

from __future__ import annotations

import numpy as np
import pytest

from compliance import media
from compliance.labels import LabelOptions, notice_audio
from pipeline import bundled
from webapp.config import DEFAULTS
from webapp.studio.tasks import speech_error

pytestmark = pytest.mark.slow
SCRIPT = "Orders placed before noon ship the same day."
OTHER = "Thank you for watching, see you at the spring sale."


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):  # type: ignore[no-untyped-def]
    """An MP4 laid out as stamping lays out a render: the audible notice and its pause,
    then the script (here in the shipped voice)."""
    speech, rate = bundled.piper_say(SCRIPT, deterministic=True)
    track = np.concatenate([notice_audio(rate, LabelOptions()), speech.astype(np.float32) / 32768])
    folder = tmp_path_factory.mktemp("render")
    wav, out = folder / "speech.wav", folder / "render.mp4"
    media.write_wav(wav, track, rate)
    media.ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "color=c=black:s=160x120:r=25",
            "-i",
            str(wav),
            "-shortest",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(out),
        ]
    )
    return out


def test_the_approved_script_passes_and_another_is_quarantined(rendered):
    threshold = float(DEFAULTS["RENDER_MAX_WER"])
    right = speech_error(rendered, SCRIPT, LabelOptions())
    wrong = speech_error(rendered, OTHER, LabelOptions())
    assert right < threshold / 2 and wrong > threshold, (right, wrong)  # measured 0.25 and 0.9
