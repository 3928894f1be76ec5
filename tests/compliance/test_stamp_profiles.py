"""The Q&A answer stamping profile (R26): every label, watermark, tag and signature of a
render, but no audible notice (the conversation plays it once, before the first answer)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from compliance import media
from compliance.labels import find_label
from compliance.payload import new_watermark_id
from compliance.stamping import ContentSpec, profile_settings, stamp
from compliance.verification import verify

pytestmark = pytest.mark.slow


def test_a_qa_answer_clip_has_every_mark_but_the_spoken_notice(stamped_media, tmp_path):
    source = stamped_media.unrelated  # one 3 s GRID clip
    settings = profile_settings(stamped_media.settings, "qa_answer")
    assert settings.labels.notice == "none"
    assert settings.labels.text == stamped_media.settings.labels.text
    out = tmp_path / "answer.mp4"
    record = stamp(source, out, ContentSpec(uuid.uuid4().hex, new_watermark_id()), settings)
    facts, before = media.video_facts(out), media.video_facts(source)
    assert facts.frames == before.frames  # no opening frames held for a notice
    assert abs(record.duration_s - before.frames / before.fps) < 1e-6
    assert find_label(next(iter(media.frames(out)))) is not None  # R8 from the first frame
    result = verify(out, stamped_media.settings)  # verified with the ordinary settings
    assert result.verdict == "ai_generated_by_us" and result.content_id == record.content_id
    assert result.c2pa.state == "Trusted" and result.aigc.signature_ok
    assert result.watermark.video.found and result.watermark.audio.found
    envelopes = [_envelope(media.audio(path, 16000)[: 16000 * 2]) for path in (source, out)]
    assert np.corrcoef(*envelopes)[0, 1] > 0.9  # the speech starts at once, no notice first


def _envelope(samples: np.ndarray) -> np.ndarray:
    """Loudness in 50 ms windows."""
    windows = samples[: len(samples) // 800 * 800].reshape(-1, 800)
    return np.sqrt((windows**2).mean(axis=1))


def test_profiles_are_named():
    with pytest.raises(ValueError, match="unknown stamping profile"):
        profile_settings(None, "quiet")  # type: ignore[arg-type]
    assert profile_settings(None, "standard") is None  # type: ignore[arg-type]


def test_the_none_notice_is_silent():
    from compliance.labels import LabelOptions, notice_audio

    assert notice_audio(44100, LabelOptions(notice="none")).size == 0
