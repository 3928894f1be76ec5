"""The stream engine splices an answer in at the next pause of the segment on air and
resumes the segment after it (issue 19: comment-to-answer p95 <= 3 s). Real ffmpeg
clips and the engine's real encoder; no RTMP server (the splice is decided before any
output). Synthetic tones make the pause and every clip's length exact."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from compliance import media
from pipeline.live.engine import Clip, Engine, EngineOptions, pauses

OPTIONS = EngineOptions(width=64, height=48)


def _clip(path: Path, seconds: float, quiet: tuple[float, float] | None, freq: int) -> Path:
    """A test-pattern clip with a tone, silent from ``quiet[0]`` to ``quiet[1]`` s."""
    gate = f"if(between(t\\,{quiet[0]}\\,{quiet[1]})\\,0\\,0.5)" if quiet else "0.5"
    media.ffmpeg(
        [
            *("-f", "lavfi", "-i", f"testsrc=size=64x48:rate=25:d={seconds}"),
            *("-f", "lavfi", "-i", f"aevalsrc={gate}*sin(2*PI*{freq}*t):d={seconds}:s=44100"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-shortest", str(path)),
        ]
    )
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("engine")
    return {
        "segment": _clip(work / "segment.mp4", 2.4, (1.0, 1.4), 440),  # pause at 1.2 s
        "answer": _clip(work / "answer.mp4", 0.6, None, 660),
        "idle": _clip(work / "idle.mp4", 1.0, None, 330),
    }


def test_pauses_are_found_relative_to_the_clip_level() -> None:
    rate = OPTIONS.sample_rate
    t = np.arange(int(2.0 * rate)) / rate
    speech = 0.01 * np.sin(2 * np.pi * 200 * t)  # quiet speaker: the level is relative
    speech[int(0.8 * rate) : int(1.1 * rate)] *= 0.001  # 300 ms pause around 0.95 s
    speech[int(1.5 * rate) : int(1.6 * rate)] *= 0.001  # 100 ms: too short to cut at
    assert pauses(speech.astype(np.float32), OPTIONS) == frozenset({24})  # 0.95 s * 25 fps
    assert pauses(np.zeros(rate, np.float32), OPTIONS) == frozenset()


def test_an_answer_is_cut_in_at_the_next_pause_and_the_segment_resumes(
    clips: dict[str, Path],
) -> None:
    segment = Clip(clips["segment"], "segment", OPTIONS)
    answer = Clip(clips["answer"], "answer", OPTIONS)
    assert segment.cuts == frozenset({30})
    engine = Engine(OPTIONS, Clip(clips["idle"], "idle", OPTIONS))
    engine.play(segment)
    engine.start()
    try:
        deadline = time.monotonic() + 10
        while not engine.aired and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.splice(answer)  # about 0.1 s into the segment: its pause comes at 1.2 s
        while engine.stats.idle_frames == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        engine.stop()
    assert engine.error is None
    aired = [(a.key, a.frame, a.offset) for a in engine.aired]
    # the answer starts at the pause (frame 30), not at the segment's end (frame 60);
    # the segment's other 30 frames follow it, then the idle loop: nothing lost or doubled
    assert aired[:4] == [("segment", 0, 0), ("answer", 30, 0), ("segment", 45, 30), ("idle", 75, 0)]
    assert engine.stats.cuts == 1
