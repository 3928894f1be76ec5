"""Media are probed within configured limits before they are decoded (issue 14, High)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from compliance import media, verification
from compliance.verification import Budget, BudgetExceeded, verify, verify_within

from .. import bombs


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("bombs")
    return {
        "no_duration": bombs.no_duration_webm(work / "nodur.webm"),
        "huge": bombs.huge_picture(work / "huge.mp4"),
        "ten_hours": bombs.ten_hour_header(work / "long.mkv"),
    }


def test_bombs_are_small(hostile: dict[str, Path]) -> None:
    assert all(p.stat().st_size < 1_000_000 for p in hostile.values())


def test_no_duration_webm_is_timed_from_its_packets(hostile: dict[str, Path]) -> None:
    info = media.probe(hostile["no_duration"])
    assert info.duration_from == "packets"
    assert 19.5 <= info.duration_s <= 20.1 and info.frames == pytest.approx(500, abs=2)
    with pytest.raises(media.MediaLimitExceeded) as refused:
        media.probe(hostile["no_duration"], media.MediaLimits(max_seconds=10.0))
    assert refused.value.limit == "max_seconds"
    assert "at most 10 s" in str(refused.value) and "DHF_MEDIA_MAX_SECONDS" in str(refused.value)


def test_huge_picture_is_refused_from_the_header(hostile: dict[str, Path]) -> None:
    with pytest.raises(media.MediaLimitExceeded) as refused:
        media.probe(hostile["huge"])
    assert refused.value.limit == "max_pixels"
    assert str(refused.value).startswith("The video is 8192x8192 pixels; at most 8294400 pixels")


def test_ten_hour_header_is_refused_by_its_claim(hostile: dict[str, Path]) -> None:
    with pytest.raises(media.MediaLimitExceeded) as refused:
        media.probe(hostile["ten_hours"])
    assert refused.value.limit == "max_seconds"
    assert str(refused.value).startswith("The file runs 36000 s; at most 900 s")


def test_frame_and_decoded_byte_limits(hostile: dict[str, Path]) -> None:
    info = media.probe(hostile["no_duration"])
    for limits, name in (
        (media.MediaLimits(max_frames=100), "max_frames"),
        (media.MediaLimits(max_decoded_bytes=10 * 2**20), "max_decoded_bytes"),
    ):
        with pytest.raises(media.MediaLimitExceeded) as refused:
            media.check_limits(info, limits)
        assert refused.value.limit == name
    # a header that lies about the size is caught while decoding
    lying = replace(info, frames=10, width=64, height=64)
    with pytest.raises(media.MediaLimitExceeded, match="max_decoded_bytes"):
        media.sample_frames(
            hostile["no_duration"], lying, 5, media.MediaLimits(max_decoded_bytes=5 * 2**20)
        )


def test_sampling_keeps_a_few_small_frames_chosen_by_time(hostile: dict[str, Path]) -> None:
    info = media.probe(hostile["no_duration"])
    kept = media.sample_frames(hostile["no_duration"], info, 8, max_side=320)
    assert len(kept) == 8
    assert all(f.shape == (180, 320, 3) for f in kept)


def test_verify_decodes_a_bounded_sample_of_the_no_duration_file(
    hostile: dict[str, Path], stamped_media, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[int] = []
    real = verification.decode_video

    def spy(frames, codec, options):  # type: ignore[no-untyped-def]
        frames = list(frames)
        held.append(sum(f.nbytes for f in frames))
        held.append(len(frames))
        return real(frames, codec, options)

    monkeypatch.setattr(verification, "decode_video", spy)
    result = verify(hostile["no_duration"], stamped_media.settings)
    assert result.verdict == "unknown"
    size, count = held
    assert count <= stamped_media.settings.video.decode_frames  # not all 500 frames
    assert size <= count * 640 * 360 * 3


def test_verify_refuses_hostile_headers(hostile: dict[str, Path], stamped_media) -> None:
    for name, limit in (("huge", "max_pixels"), ("ten_hours", "max_seconds")):
        with pytest.raises(media.MediaLimitExceeded) as refused:
            verify(hostile[name], stamped_media.settings)
        assert refused.value.limit == limit


def test_verify_within_budget(hostile: dict[str, Path], stamped_media) -> None:
    settings = stamped_media.settings
    assert verify_within(stamped_media.stamped, settings, Budget()).verdict == (
        "ai_generated_by_us"
    )
    with pytest.raises(media.MediaLimitExceeded) as refused:
        verify_within(hostile["huge"], settings, Budget())
    assert refused.value.limit == "max_pixels"
    with pytest.raises(BudgetExceeded) as slow:
        verify_within(stamped_media.stamped, settings, Budget(seconds=0.001))
    assert slow.value.limit == "verify_budget_s"
    with pytest.raises(BudgetExceeded) as big:
        verify_within(stamped_media.stamped, settings, Budget(memory_bytes=64 * 2**20))
    assert big.value.limit == "verify_memory_bytes"
