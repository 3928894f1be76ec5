"""Every output carries labels, AIGC tag, watermark and a signed manifest; verify reads them.

One real clip (three GRID clips joined) is stamped once per session (tests/conftest.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from compliance import aigc, media, provenance
from compliance.labels import find_label
from compliance.verification import verify

pytestmark = pytest.mark.slow


def test_stamped_file_verifies_as_ours(stamped_media):
    result = verify(stamped_media.stamped, stamped_media.settings)
    assert result.verdict == "ai_generated_by_us"
    assert result.content_id == stamped_media.record.content_id
    assert result.c2pa.state == "Trusted" and result.c2pa.ours
    assert result.c2pa.soft_binding == stamped_media.record.watermark_id
    assert result.aigc.schema_ok and result.aigc.signature_ok
    assert result.watermark.found
    assert result.watermark.watermark_id == stamped_media.record.watermark_id
    assert result.watermark.video.found and result.watermark.audio.found
    assert result.watermark.p_value <= 1e-9


def test_metadata_stripped_reencode_is_still_resolved_by_watermark(stamped_media):
    assert media.video_facts(stamped_media.stripped).width > 0
    result = verify(stamped_media.stripped, stamped_media.settings)
    assert result.c2pa is None and result.aigc is None  # everything explicit is gone...
    assert result.verdict == "ai_generated_by_us"  # ...the watermark still speaks
    assert result.watermark.watermark_id == stamped_media.record.watermark_id
    assert result.watermark.p_value <= 1e-9


def test_unrelated_clip_is_unknown(stamped_media):
    result = verify(stamped_media.unrelated, stamped_media.settings)
    assert result.verdict == "unknown"
    assert not result.watermark.found and result.watermark.p_value == 1.0


def test_one_changed_byte_is_tampered(stamped_media):
    result = verify(stamped_media.tampered, stamped_media.settings)
    assert result.verdict == "tampered"
    assert result.c2pa.state == "Invalid"
    assert "assertion.bmffHash.mismatch" in result.c2pa.problems


def test_aigc_tag_follows_r11(stamped_media):
    label = aigc.read(stamped_media.stamped, stamped_media.settings.keys)
    assert tuple(label.fields) == aigc.FIELDS
    assert label.fields["Label"] == "1"
    assert label.fields["ProduceID"] == stamped_media.record.content_id
    assert label.fields["ContentProducer"] == "DHFTEST"
    assert label.signature_ok
    raw = json.loads(stamped_media.record.aigc)
    assert all(" " not in v and '"' not in v for v in raw.values())


def test_aigc_signature_breaks_when_a_field_is_edited(stamped_media, tmp_path):
    fields = json.loads(stamped_media.record.aigc)
    fields["ContentProducer"] = "SOMEONE"
    out = tmp_path / "edited.mp4"
    media.ffmpeg(
        [
            "-i",
            str(stamped_media.stamped),
            "-c",
            "copy",
            "-metadata",
            f"AIGC={json.dumps(fields, separators=(',', ':'))}",
            "-movflags",
            "use_metadata_tags",
            str(out),
        ]
    )
    label = aigc.read(out, stamped_media.settings.keys)
    assert label.schema_ok and not label.signature_ok


def test_ffmpeg_drops_the_tag_without_use_metadata_tags(stamped_media, tmp_path):
    """Why every writer sets the flag and stamp() reads the tag back (R11's trap)."""
    value = stamped_media.record.aigc
    for flag, expected in ((["-movflags", "use_metadata_tags"], True), ([], False)):
        out = tmp_path / f"copy{len(flag)}.mp4"
        media.ffmpeg(
            [
                "-i",
                str(stamped_media.source),
                "-c",
                "copy",
                "-metadata",
                f"AIGC={value}",
                *flag,
                str(out),
            ]
        )
        assert (aigc.read(out) is not None) is expected


def test_stamp_refuses_to_finish_when_the_tag_is_lost(stamped_media, tmp_path, monkeypatch):
    from compliance import stamping
    from compliance.payload import new_watermark_id

    spec = stamping.ContentSpec("c" * 32, new_watermark_id())

    class ForgetfulWriter(stamping.media.FrameWriter):
        def __init__(self, *args, **kwargs):  # a writer that lost use_metadata_tags
            super().__init__(*args, **kwargs, movflags="+faststart")

    monkeypatch.setattr(stamping.media, "FrameWriter", ForgetfulWriter)
    with pytest.raises(RuntimeError, match="AIGC tag did not survive"):
        stamping.stamp(stamped_media.source, tmp_path / "x.mp4", spec, stamped_media.settings)
    assert not (tmp_path / "x.mp4").exists()  # nothing half-written


def test_manifest_declares_ai_and_no_training_and_no_thumbnail(stamped_media):
    report = provenance.read(stamped_media.stamped, stamped_media.settings.keys)
    assert {"c2pa.actions.v2", "c2pa.soft-binding", "cawg.training-mining"} <= set(
        report.assertions
    )
    manifest = stamped_media.record.manifest
    assert b"trainedAlgorithmicMedia" in manifest and b"notAllowed" in manifest
    assert b"c2pa.thumbnail" not in manifest
    assert b"Ada" not in manifest  # no subject name ever goes in


def test_visible_label_by_pixels(stamped_media):
    fps = media.video_facts(stamped_media.stamped).fps
    frames = list(media.frames(stamped_media.stamped))
    height, width = frames[0].shape[:2]
    for t in (0.0, 1.0, 1.96):
        box = find_label(frames[int(t * fps)])
        assert box is not None, f"no label at {t} s"
        assert box[3] - box[1] >= 0.05 * min(width, height)
    assert find_label(frames[int(4.0 * fps)]) is None  # the big label is gone later


def test_audible_notice_at_the_start(stamped_media):
    from pipeline.bundled import transcribe

    samples = media.audio(stamped_media.stamped, 16000)
    heard = transcribe((samples[: int(3.0 * 16000)] * 32767).astype(np.int16), 16000)
    assert "generated" in heard.split(), heard


def test_no_false_positives_on_unmarked_shared_data(stamped_media):
    from compliance.verification import watermark

    clips = sorted((stamped_media.unrelated.parent).glob("*.mpg"))[:8]
    decisions = [watermark(c, stamped_media.settings) for c in clips]
    assert not any(d.found for d in decisions)
    assert all(d.p_value == 1.0 for d in decisions)
