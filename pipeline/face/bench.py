"""``dhf bench render``: frames per second of each render stage on real footage.

Uses the model that ``dhf eval face`` trained (same work dir; trains one when missing),
drives it with held-out GRID audio for ``seconds``, and times per frame: the face model
(audio features, shape prediction, mouth retrieval: one pass over the whole script,
shared by its frames), blending (template frame read + mouth paste), compositing at
``size`` x ``size`` (half-body framing, background replacement, tone), labels, the
invisible watermark and H.264 encoding.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from compliance import media
from compliance.labels import Labeler
from compliance.payload import PayloadCodec
from compliance.watermark import embed_frame

from . import features
from .composite import CompositeOptions, Compositor
from .evaluate import clips_in, log, prepare, work_root
from .render import FaceRig, Timer, iter_frames

BENCH_KEY = ("bench", bytes(32))  # a throwaway watermark key: timing only


def script_audio(heldout: Path, seconds: float) -> npt.NDArray[Any]:
    """Held-out clips' audio joined up to ``seconds`` (16 kHz)."""
    chunks, total = [], 0
    for clip in clips_in(heldout):
        chunks.append(media.audio(clip, features.RATE))
        total += len(chunks[-1])
        if total >= seconds * features.RATE:
            break
    return np.concatenate(chunks)[: int(seconds * features.RATE)]


def bench(
    data_dir: Path | str, seconds: float = 10.0, size: int = 512, profile: str = "cpu"
) -> dict[str, Any]:
    work = work_root(profile)
    trained_now = not (work / "model" / "model.pt").exists()
    if trained_now:
        log(f"no trained {profile} model in {work}: training one first")
        prepare(Path(data_dir) / "train", profile, work)
    avatar = FaceRig.load(work)
    samples = script_audio(Path(data_dir) / "heldout", seconds)
    timer = Timer()
    compositor = Compositor(
        avatar,
        CompositeOptions(size=(size, size), framing="half", background=(32, 96, 160), tone="warm"),
    )
    labeler = Labeler(size, size)
    bits = PayloadCodec([BENCH_KEY]).encode("0123456789abcdef")
    frames = []
    for i, rgb in enumerate(iter_frames(avatar, samples, features.RATE, timer=timer)):
        with timer.stage("composite"):
            out = compositor.apply(rgb)
        with timer.stage("labels"):
            out = labeler.apply(out, i / avatar.fps)
        with timer.stage("watermark"):
            frames.append(embed_frame(cv2.cvtColor(out, cv2.COLOR_RGB2BGR), bits))
    compositor.close()
    _encode(frames, samples, avatar.fps, size, timer)
    return _result(timer.seconds, len(frames), seconds, size, profile, trained_now)


def _encode(
    frames: list[npt.NDArray[Any]], samples: npt.NDArray[Any], fps: float, size: int, timer: Timer
) -> None:
    with tempfile.TemporaryDirectory(prefix="dhf-bench-") as tmp:
        wav = Path(tmp) / "a.wav"
        media.write_wav(wav, samples, features.RATE)
        with timer.stage("encode"):
            writer = media.FrameWriter(Path(tmp) / "out.mp4", (size, size), fps, wav, {})
            for bgr in frames:
                writer.write(bgr)
            writer.close()


def _result(
    stages: dict[str, float],
    frames: int,
    seconds: float,
    size: int,
    profile: str,
    trained_now: bool,
) -> dict[str, Any]:
    fps = {name: round(frames / max(s, 1e-9), 1) for name, s in stages.items()}
    before_encoding = sum(stages[k] for k in ("face_model", "blend", "composite"))
    everything = sum(stages.values())
    return {
        "profile": profile,
        "size": [size, size],
        "audio_seconds": seconds,
        "frames": frames,
        "fps_per_stage": fps,
        "seconds_per_stage": {k: round(v, 3) for k, v in stages.items()},
        "render_fps_before_encoding": round(frames / before_encoding, 1),
        "face_fps": round(frames / (stages["face_model"] + stages["blend"]), 1),
        "end_to_end_fps": round(frames / everything, 1),
        "real_time_factor": round(everything / seconds, 3),
        "trained_now": trained_now,
        "cpu": f"{os.cpu_count()} cores shared, torch threads 2",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
