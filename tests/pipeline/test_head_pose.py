"""Head yaw and turn events on the GRID speaker: genuine frames (frontal) and SYNTHETIC
head turns (genuine frames warped by ``tests/headturn.py``), sampled by time from MP4 and
from a WebM written to a pipe (no duration in its header, as browsers write them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from compliance import media
from pipeline import head_pose as hp
from pipeline.face import landmarks

from .. import headturn
from ..conftest import SHARED_DATA

pytestmark = pytest.mark.slow
GRID = SHARED_DATA / "grid_s1" / "train"
THRESHOLD = hp.TURN_THRESHOLD_DEG
TURN = (2.0, 3.5)  # the synthetic turn's interval: it starts turning at 2.0 s
CUE = 1.6  # when a page would have shown the cue, for a person who reacts in 0.4 s


@pytest.fixture(scope="module")
def grid_clips() -> list[Path]:
    clips = sorted(GRID.glob("*.mpg"))
    if not clips:
        pytest.skip(f"shared data missing: {GRID}")
    return clips


@pytest.fixture(scope="module")
def source(grid_clips: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six seconds of the GRID speaker talking to the camera (two clips joined)."""
    out = tmp_path_factory.mktemp("head") / "source.mp4"
    media.concat(grid_clips[:2], out)
    return out


@pytest.fixture(scope="module", params=[30.0, -30.0], ids=["to-image-right", "to-image-left"])
def turned(request: pytest.FixtureRequest, source: Path) -> tuple[Path, float]:
    """The source with one synthetic turn over TURN (peak yaw = the param): (path, peak)."""
    peak = float(request.param)
    out = source.with_name(f"turn{peak:+.0f}.mp4")
    headturn.head_turn_clip(source, out, [(*TURN, peak)])
    return out, peak


def piped_webm(src: Path, out: Path) -> Path:
    """VP8 + Opus WebM written to a pipe, so the muxer cannot go back to write a duration."""
    cmd = [
        media.executable(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        str(src),
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "1M",
        "-c:a",
        "libopus",
        "-f",
        "webm",
        "pipe:1",
    ]
    with out.open("wb") as sink:
        subprocess.run(cmd, stdout=sink, check=True)
    return out


def test_genuine_grid_frames_are_frontal(grid_clips: list[Path]) -> None:
    times, yaws = [], []
    for clip in grid_clips[::3]:  # 25 clips, 8 frames each, sampled by time
        t, y = hp.sample_yaw(clip, fps=2.5)
        assert hp.turn_events(t, y, THRESHOLD) == []
        times.append(t)
        yaws.append(y)
    yaw = np.concatenate(yaws)
    assert len(yaw) == 200
    found = yaw[np.isfinite(yaw)]
    assert len(found) >= 190  # a few clips open on blank grey frames
    rel = found - np.median(found)
    assert np.abs(rel).max() < THRESHOLD / 2, np.abs(rel).max()
    assert abs(np.median(found)) < THRESHOLD  # the speaker looks about at the camera


def test_mirroring_a_frame_flips_the_sign(grid_clips: list[Path]) -> None:
    frames = [list(media.frames(clip, every=25))[1] for clip in grid_clips[:10]]  # at 1 s
    pairs = np.array(
        [
            (hp.yaw_degrees(a), hp.yaw_degrees(b))
            for a, b in zip(
                landmarks.detect(frames, video=False),
                landmarks.detect([f[:, ::-1] for f in frames], video=False),
                strict=True,
            )
            if a is not None and b is not None
        ]
    )
    assert len(pairs) == 10
    yaw, mirrored = pairs.T
    assert np.median(yaw) > 2.0 > -2.0 > np.median(mirrored)  # the speaker's nose points
    # a little toward the image's right; FaceMesh adds a bias of its own of a few degrees
    assert np.abs(yaw + mirrored).max() < 6.0, pairs


def test_warped_frames_turn_the_requested_way(grid_clips: list[Path]) -> None:
    frame = list(media.frames(grid_clips[1], every=25))[1]
    base = hp.yaw_degrees(next(landmarks.detect([frame], video=False)))
    seen = {}
    for requested in (-30, -20, -10, 10, 20, 30):
        points = next(landmarks.detect([headturn.turn_frame(frame, requested)], video=False))
        assert points is not None
        seen[requested] = hp.yaw_degrees(points) - base
    for requested, delta in seen.items():
        assert 0.6 < delta / requested < 1.05, seen  # right sign, most of the turn
    values = [seen[r] for r in sorted(seen)]
    assert values == sorted(values), seen


def test_a_synthetic_turn_gives_one_event_in_the_window(turned: tuple[Path, float]) -> None:
    path, peak = turned
    times, yaw = hp.sample_yaw(path)
    events = hp.turn_events(times, yaw, THRESHOLD)
    assert len(events) == 1, events
    when, direction = events[0]
    # positive yaw: nose toward the image's right, which is the person's own left
    assert direction == ("left" if peak > 0 else "right")
    assert TURN[0] <= when <= TURN[0] + 0.6  # reached while turning, not later
    low, high = hp.TURN_LATENCY_S
    assert low <= when - CUE <= high


def test_no_turn_no_event(source: Path) -> None:
    out = source.with_name("unturned.mp4")
    headturn.head_turn_clip(source, out, [])
    times, yaw = hp.sample_yaw(out)
    assert len(times) == 60 and np.isfinite(yaw).all()
    assert hp.turn_events(times, yaw, THRESHOLD) == []


def test_sample_yaw_on_a_piped_webm_samples_by_time_and_stops(
    turned: tuple[Path, float],
) -> None:
    path, peak = turned
    webm = piped_webm(path, path.with_suffix(".webm"))
    assert media.probe(webm).duration_from == "packets"  # the header does not say how long

    times, yaw = hp.sample_yaw(webm, fps=10.0, max_seconds=3.0)
    assert 29 <= len(times) <= 30 and times[-1] < 3.0
    assert np.all(np.diff(times) > 0.05) and np.all(np.diff(times) < 0.15)
    assert np.isfinite(yaw).all()

    full_times, full_yaw = hp.sample_yaw(webm)
    assert 5.8 <= full_times[-1] < 6.0  # the whole recording when it is shorter
    mp4_events = hp.turn_events(*hp.sample_yaw(path), THRESHOLD)
    webm_events = hp.turn_events(full_times, full_yaw, THRESHOLD)
    assert [d for _, d in webm_events] == [d for _, d in mp4_events]
    assert abs(webm_events[0][0] - mp4_events[0][0]) <= 0.15


def test_turn_event_rules() -> None:
    t = np.arange(20) / 10.0

    def events(values: list[float], baseline: float | None = 0.0) -> list[tuple[float, str]]:
        yaw = np.array(values, float)
        return hp.turn_events(t[: len(values)], yaw, 15.0, baseline_deg=baseline)

    assert events([0, 0, 20, 20, 0, 0]) == [(0.2, "left")]
    assert events([0, 0, -20, -20, -20, 0]) == [(0.2, "right")]
    assert events([0, 0, 20, 0, 0]) == []  # one sample is not a turn (min_frames=2)
    assert events([0, 20, np.nan, 20, 0]) == []  # a lost face breaks the run
    assert events([0, 20, 20, 10, 20, 20, 0]) == [(0.1, "left")]  # 10 is not back to frontal
    assert events([0, 20, 20, 0, -20, -20]) == [(0.1, "left"), (0.4, "right")]
    assert events([20, 20, 20, 0, 0, 0]) == []  # it started turned: no frontal before
    # by default yaw is relative to the median (the resting yaw), here 10 degrees
    assert events([10, 10, 30, 30, 10, 10], baseline=None) == [(0.2, "left")]
    assert events([10, 10, 20, 20, 10, 10], baseline=None) == []
    assert events([np.nan, np.nan], baseline=None) == []
