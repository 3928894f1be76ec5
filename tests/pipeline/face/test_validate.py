"""Training-video validation: user-facing messages, asserted verbatim."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.face.validate import Limits, Problem, training_video_problems

from . import synthetic

SHORT_OK = Limits(min_seconds=1.0)  # lets a 2 s clip through the length check


def speech(seconds: float) -> np.ndarray:
    return synthetic.speech(synthetic.envelope(seconds, seed=3), seed=3)


def test_no_face(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (320, 320, 3), dtype=np.uint8)
    synthetic.write_video(tmp_path / "v.mp4", [noise] * 50, speech(2.0))
    assert training_video_problems(tmp_path / "v.mp4", SHORT_OK) == [
        Problem(
            "no_face",
            "Your face is visible in only 0% of the video. Face the camera, "
            "fully in the picture, for the whole recording.",
        )
    ]


def test_two_faces(tmp_path: Path) -> None:
    pair = np.hstack([synthetic.face(320), synthetic.face(320)])
    synthetic.write_video(tmp_path / "v.mp4", [pair] * 50, speech(2.0))
    assert training_video_problems(tmp_path / "v.mp4", SHORT_OK) == [
        Problem(
            "several_faces",
            "More than one face is visible. Record alone, with no other "
            "people, photos or screens showing faces in the picture.",
        )
    ]


def test_too_short(tmp_path: Path) -> None:
    synthetic.write_video(tmp_path / "v.mp4", [synthetic.face(320)] * 75, speech(3.0))
    assert training_video_problems(tmp_path / "v.mp4") == [
        Problem(
            "too_short",
            "The video is 3 s long; at least 60 s of you speaking is needed "
            "(3 minutes recommended).",
        )
    ]


def test_good_footage_passes_and_silence_is_named(tmp_path: Path) -> None:
    frames = [synthetic.face(320)] * 50
    synthetic.write_video(tmp_path / "ok.mp4", frames, speech(2.0))
    synthetic.write_video(tmp_path / "mute.mp4", frames, np.zeros(32000, np.float32))
    assert training_video_problems(tmp_path / "ok.mp4", SHORT_OK) == []
    assert [p.code for p in training_video_problems(tmp_path / "mute.mp4", SHORT_OK)] == [
        "silent_audio"
    ]


def test_frames_are_few_small_and_chosen_by_time(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pipeline.face import validate

    big = np.kron(synthetic.face(320), np.ones((4, 4, 1), np.uint8))  # 1280x1280
    synthetic.write_video(tmp_path / "big.mp4", [big] * 100, speech(4.0))
    held: list[tuple[int, ...]] = []

    def spy(frames, lim, *args):  # type: ignore[no-untyped-def]
        held.extend(f.shape for f in frames)
        return []

    monkeypatch.setattr(validate, "_face_problems", spy)
    training_video_problems(tmp_path / "big.mp4", Limits(min_seconds=1.0, samples=10))
    assert len(held) == 10 and all(max(shape) <= 640 for shape in held)


def test_over_limit_footage_is_refused_before_decoding(tmp_path: Path) -> None:
    from compliance.media import MediaLimits

    synthetic.write_video(tmp_path / "v.mp4", [synthetic.face(320)] * 50, speech(2.0))
    found = training_video_problems(tmp_path / "v.mp4", SHORT_OK, MediaLimits(max_pixels=320 * 200))
    assert [p.code for p in found] == ["media_limit"]
    assert "limit max_pixels" in found[0].message
