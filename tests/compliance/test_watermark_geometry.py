"""The video mark alone decides muted files that were cropped or rescaled (issue 14).

Muted re-uploads and screen recordings carry no audio mark, so the frames must decide:
a stamped clip with its audio removed, after a 10 % border crop or a 720p -> 480p
rescale, is ours by the video mark alone, with the issued watermark id; the unmarked
source after the same transforms is not (the geometric search must not buy its hits
with false positives).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from compliance import media
from compliance.verification import verify, watermark

pytestmark = pytest.mark.slow

CROP_10PCT = ["-vf", "crop=iw*0.8:ih*0.8", "-an"]
TO_480P = ["-vf", "scale=854:480", "-an"]


def _transform(source: Path, args: list[str], out: Path) -> Path:
    media.ffmpeg(["-i", str(source), *args, str(out)])
    assert not media.probe(out).has_audio  # muted: only the frames can speak
    return out


@pytest.fixture(scope="module")
def stamped_720p(stamped_media, tmp_path_factory):
    """One GRID clip upscaled to 1280x720 and stamped, and its unmarked source."""
    from compliance.payload import new_watermark_id
    from compliance.stamping import ContentSpec, stamp

    work = tmp_path_factory.mktemp("stamped720")
    source = work / "source720.mp4"
    clip = stamped_media.unrelated.parent.parent / "train" / "bbal7s.mpg"
    media.concat([clip], source, (1280, 720))
    stamped = work / "stamped720.mp4"
    record = stamp(
        source, stamped, ContentSpec(uuid.uuid4().hex, new_watermark_id()), stamped_media.settings
    )
    return source, stamped, record


def _assert_ours_by_video(path: Path, settings, watermark_id: str) -> None:
    result = verify(path, settings)
    assert result.verdict == "ai_generated_by_us"
    assert result.c2pa is None and result.aigc is None  # ffmpeg dropped both
    assert result.watermark.audio is None  # no audio track: nothing to decide on
    video = result.watermark.video
    assert video.found and video.watermark_id == watermark_id
    assert result.watermark.watermark_id == watermark_id
    assert result.watermark.p_value == video.p_value <= 1e-9


def test_muted_border_crop_is_decided_by_the_video_mark(stamped_media, stamped_720p, tmp_path):
    _, stamped, record = stamped_720p
    out = _transform(stamped, CROP_10PCT, tmp_path / "crop.mp4")
    assert media.video_facts(out).width == 1024  # 1280 -> 1024: 10 % off each side
    _assert_ours_by_video(out, stamped_media.settings, record.watermark_id)


def test_muted_720p_to_480p_is_decided_by_the_video_mark(stamped_media, stamped_720p, tmp_path):
    _, stamped, record = stamped_720p
    out = _transform(stamped, TO_480P, tmp_path / "480p.mp4")
    _assert_ours_by_video(out, stamped_media.settings, record.watermark_id)


def test_muted_9x16_centre_crop_is_decided_by_the_video_mark(stamped_media, stamped_720p, tmp_path):
    _, stamped, record = stamped_720p
    args = ["-vf", "crop=ih*9/16:ih,scale=360:640", "-an"]
    out = _transform(stamped, args, tmp_path / "vertical.mp4")
    _assert_ours_by_video(out, stamped_media.settings, record.watermark_id)


def test_unmarked_clips_after_the_same_transforms_are_not_ours(
    stamped_media, stamped_720p, tmp_path
):
    source720, _, _ = stamped_720p
    files = [
        _transform(stamped_media.source, CROP_10PCT, tmp_path / "u_crop.mp4"),
        _transform(source720, TO_480P, tmp_path / "u_480p.mp4"),
        _transform(source720, CROP_10PCT, tmp_path / "u_crop720.mp4"),
    ]
    heldout = sorted(stamped_media.unrelated.parent.glob("*.mpg"))[:2]
    files += [_transform(c, CROP_10PCT, tmp_path / f"u_{c.stem}.mp4") for c in heldout]
    for path in files:
        result = watermark(path, stamped_media.settings)
        assert not result.found, path.name
        assert result.p_value == 1.0 and result.video.p_value == 1.0


def test_clarity_equals_the_folds_it_stands_for():
    """The FFT shortcut of the key-free sync statistic against folding by hand."""
    import cv2

    from compliance.watermark import _clarity

    rng = np.random.default_rng(7)
    grid = rng.standard_normal((40, 50))
    z = _clarity(grid, 192)
    high = grid - cv2.blur(grid, (3, 3), borderType=cv2.BORDER_REFLECT)
    energy = float(np.sum(high**2))
    rows, cols = np.indices(high.shape)
    for columns in (0, 1, 45, 160, 191):
        index = ((rows * columns + cols) % 192).ravel()
        sums = np.bincount(index, high.ravel(), 192)
        chi2 = (192 * np.sum(sums**2) - np.sum(sums) ** 2) / energy
        assert z[columns] == pytest.approx((chi2 - 191) / np.sqrt(382), abs=1e-6)


def test_search_sizes_map_common_edits_back_to_the_marked_scale():
    from compliance.watermark import VideoWatermarkOptions, search_sizes

    options = VideoWatermarkOptions()
    assert (1280, 720) in search_sizes(854, 480, options)  # 720p -> 480p
    assert (405, 720) in search_sizes(360, 640, options)  # 9:16 centre of 720p, at 640 high
    assert search_sizes(288, 230, options)[0] == (288, 230)  # a crop: no rescale first
