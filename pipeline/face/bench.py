"""``dhf bench render``: frames per second of each render stage on real footage.

Uses the model that ``dhf eval face`` trained (same work dir; trains one when missing),
drives it with held-out GRID audio for ``seconds``, and times per frame: the face model
(audio features, shape prediction, mouth retrieval: one pass over the whole script,
shared by its frames), blending (template frame read + mouth paste), compositing at
``size`` x ``size`` (half-body framing, background replacement, tone), labels, the
invisible watermark and H.264 encoding (frames stream into the encoder as they come).
``footage_height`` (``--footage-height 1080``) runs the same on the training clips
upscaled to that height, output at the footage's own size (source framing).
"""

from __future__ import annotations

import os
import resource
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

from . import features, ingest
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


def hd_footage(data_dir: Path, work: Path, height: int, clips: int = 8) -> Path:
    """An ingest of ``clips`` training clips upscaled to ``height`` (cached in ``work``).

    Stands in for a customer's HD selfie video: the frames, crops and paste run at that
    resolution (the shape model is resolution-free, so the eval's checkpoint drives it)."""
    out = work / f"hd-{height}"
    if (out / ingest.MANIFEST).exists():
        return out
    sources = clips_in(Path(data_dir) / "train")[:clips]
    videos = []
    with tempfile.TemporaryDirectory(prefix="dhf-hd-") as tmp:
        for clip in sources:
            video = Path(tmp) / f"{clip.stem}.mp4"
            media.ffmpeg(
                ["-i", str(clip), "-vf", f"scale=-2:{height}:flags=lanczos", "-c:v", "libx264",
                 "-crf", "14", "-c:a", "aac", str(video)]
            )  # fmt: skip
            videos.append(video)
        log(f"ingesting {len(videos)} clips upscaled to {height} px high into {out}")
        ingest.ingest(videos, out, "cpu")
    return out


def bench(
    data_dir: Path | str,
    seconds: float = 10.0,
    size: int = 512,
    profile: str = "cpu",
    footage_height: int = 0,
) -> dict[str, Any]:
    """Per-stage fps; ``footage_height`` > 0: on footage of that height, output at its size."""
    work = work_root(profile)
    trained_now = not (work / "model" / "model.pt").exists()
    if trained_now:
        log(f"no trained {profile} model in {work}: training one first")
        prepare(Path(data_dir) / "train", profile, work)
    source = hd_footage(Path(data_dir), work, footage_height) if footage_height else work
    avatar = FaceRig.load(source, work / "model" / "model.pt")
    samples = script_audio(Path(data_dir) / "heldout", seconds)
    timer = Timer()
    options = CompositeOptions(
        size=None if footage_height else (size, size),
        framing="source" if footage_height else "half",
        background=(32, 96, 160),
        tone="warm",
    )
    compositor = Compositor(avatar, options)
    out_size = compositor.size
    labeler = Labeler(*out_size)
    bits = PayloadCodec([BENCH_KEY]).encode("0123456789abcdef")
    frames = 0
    with tempfile.TemporaryDirectory(prefix="dhf-bench-") as tmp:
        wav = Path(tmp) / "a.wav"
        media.write_wav(wav, samples, features.RATE)
        writer = media.FrameWriter(Path(tmp) / "out.mp4", out_size, avatar.fps, wav, {})
        for i, rgb in enumerate(iter_frames(avatar, samples, features.RATE, timer=timer)):
            with timer.stage("composite"):
                out = compositor.apply(rgb)
            with timer.stage("labels"):
                out = labeler.apply(out, i / avatar.fps)
            with timer.stage("watermark"):
                bgr = embed_frame(cv2.cvtColor(out, cv2.COLOR_RGB2BGR), bits)
            with timer.stage("encode"):
                writer.write(bgr)
            frames += 1
        with timer.stage("encode"):
            writer.close()
    compositor.close()
    result = _result(timer.seconds, frames, seconds, out_size, profile, trained_now)
    result["footage_size"] = avatar.manifest["size"]
    result["crop_scale_px_per_iod"] = avatar.manifest["crop_scale"]
    result["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def _result(
    stages: dict[str, float],
    frames: int,
    seconds: float,
    size: tuple[int, int],
    profile: str,
    trained_now: bool,
) -> dict[str, Any]:
    fps = {name: round(frames / max(s, 1e-9), 1) for name, s in stages.items()}
    before_encoding = sum(stages[k] for k in ("face_model", "blend", "composite"))
    everything = sum(stages.values())
    return {
        "profile": profile,
        "size": list(size),
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
