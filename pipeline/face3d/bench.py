"""``dhf bench render --style 3d_...`` and ``dhf eval face --style 3d_...``.

Both reuse the face model that ``dhf eval face`` trained (``pipeline.face.evaluate``'s
work dir; trained first when missing) and build the 3D rig from the same ingested
footage (``<work>/rig3d``, timed; rebuilt on every run so the time is measured).

- bench: held-out GRID audio for ``seconds``; the 3D frames drawn with the GL viewport at
  ``size`` pixels wide (512 x 410 for GRID's 5:4 footage), then the 2D bench's
  compositing (512 x 512, half-body framing, background, tone), labels, watermark and
  H.264 encoding; fps per stage.
- eval, on ``clips`` held-out clips, each rendered from its own real audio in the 3D
  look and by the 2D renderer with the same model: identity (dlib distance, median over
  frame pairs, between rendered frames and the clip's real frames; the consent accept
  threshold is 0.45), FaceMesh re-detection rate, mouth-opening correlation with the real
  clip (best lag within +-``MAX_LAG`` frames, and the lag), for 3D and for 2D; plus a
  screenshot per look (an open-mouth frame and a view turned 15 degrees).
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
from compliance.consent import face_distance
from compliance.labels import Labeler
from compliance.payload import PayloadCodec
from compliance.watermark import embed_frame
from pipeline.consent_media import face_embeddings
from pipeline.face import features
from pipeline.face import landmarks as lm
from pipeline.face.bench import BENCH_KEY, script_audio
from pipeline.face.composite import CompositeOptions, Compositor
from pipeline.face.evaluate import best_lag, clips_in, log, prepare, work_root
from pipeline.face.render import FaceRig, Timer, render_frames

from . import render as render3d
from . import stills
from .backend import default_backend, describe
from .rig import Rig, build
from .scene import ANTIALIAS, LOOKS


def _model(data_dir: Path, profile: str) -> tuple[FaceRig, Rig, float, bool]:
    work = work_root(profile)
    trained_now = not (work / "model" / "model.pt").exists()
    if trained_now:
        log(f"no trained {profile} model in {work}: training one first")
        prepare(Path(data_dir) / "train", profile, work)
    began = time.perf_counter()
    rig = build(work, work / "rig3d")
    return FaceRig.load(work), rig, time.perf_counter() - began, trained_now


def bench(
    data_dir: Path | str,
    look: str,
    seconds: float = 10.0,
    size: int = 512,
    profile: str = "cpu",
    samples: int | None = None,
) -> dict[str, Any]:
    if look not in LOOKS:
        raise ValueError(f"unknown 3D look {look!r}; choose one of {', '.join(LOOKS)}")
    avatar, rig, rig_s, trained_now = _model(Path(data_dir), profile)
    audio = script_audio(Path(data_dir) / "heldout", seconds)
    w, h = rig.size
    gl_size = (size, round(size * h / w))
    timer = Timer()
    compositor = Compositor(
        avatar,
        CompositeOptions(size=(size, size), framing="half", background=(32, 96, 160), tone="warm"),
    )
    labeler = Labeler(size, size)
    bits = PayloadCodec([BENCH_KEY]).encode("0123456789abcdef")
    frames = 0
    rendered = render3d.iter_frames(
        rig, avatar, audio, features.RATE, look, out_size=gl_size, timer=timer, antialias=samples
    )
    with tempfile.TemporaryDirectory(prefix="dhf-bench-") as tmp:
        wav = Path(tmp) / "a.wav"
        media.write_wav(wav, audio, features.RATE)
        writer = media.FrameWriter(Path(tmp) / "out.mp4", (size, size), avatar.fps, wav, {})
        for i, rgb in enumerate(rendered):
            with timer.stage("composite"):
                out = compositor.apply(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA))
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
    antialias = ANTIALIAS[look] if samples is None else samples
    return {
        **_result(timer.seconds, frames, look, gl_size, rig_s, profile, trained_now),
        "antialias_samples": antialias,
    }


def _result(
    stages: dict[str, float],
    frames: int,
    look: str,
    gl_size: tuple[int, int],
    rig_s: float,
    profile: str,
    trained_now: bool,
) -> dict[str, Any]:
    ctx = default_backend().context()
    renderer = describe(ctx)
    ctx.release()
    everything = sum(stages.values())
    return {
        "style": look,
        "profile": profile,
        "gl_viewport": list(gl_size),
        "output_size": [gl_size[0], gl_size[0]],
        "frames": frames,
        "render3d_fps": round(frames / max(stages["render3d"], 1e-9), 1),
        "fps_per_stage": {k: round(frames / max(v, 1e-9), 1) for k, v in stages.items()},
        "seconds_per_stage": {k: round(v, 3) for k, v in stages.items()},
        "end_to_end_fps": round(frames / everything, 1),
        "rig_build_seconds": round(rig_s, 2),
        "gl_renderer": renderer,
        "trained_now": trained_now,
        "cpu": f"{os.cpu_count()} cores shared",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _opening(frames: list[npt.NDArray[Any]]) -> tuple[npt.NDArray[Any], float]:
    """Inner-lip gap per frame (FaceMesh, still-image mode) and the detection rate."""
    found = list(lm.detect(frames, video=False))
    rate = float(np.mean([p is not None for p in found]))
    points, _ = lm.fill_missing([p if p is None else p[:, :2] for p in found])
    return lm.opening(points), rate


def _clip_figures(avatar: FaceRig, rig: Rig, clip: Path, looks: tuple[str, ...]) -> dict[str, Any]:
    real = list(media.frames(clip))
    samples = media.audio(clip, features.RATE)
    real_gap = lm.opening(np.stack([p for p in _points(real)]))
    real_faces = face_embeddings(real[::10])
    out: dict[str, Any] = {"clip": clip.name}
    two_d = render_frames(avatar, samples, features.RATE, n_frames=len(real))
    gap, _ = _opening(two_d)
    lag, scores = best_lag(real_gap, gap[: len(real_gap)])
    out["2d"] = {"opening_corr": round(float(scores.max()), 3), "lag": lag}
    for look in looks:
        frames = list(render3d.iter_frames(rig, avatar, samples, features.RATE, look))
        frames = frames[: len(real)]
        gap, detected = _opening(frames)
        lag, scores = best_lag(real_gap[: len(gap)], gap)
        distance = face_distance(face_embeddings(frames[::10]), real_faces)
        out[look] = {
            "identity_distance": round(distance, 3),
            "facemesh_detected": round(detected, 3),
            "opening_corr": round(float(scores.max()), 3),
            "lag": lag,
        }
    return out


def _points(frames: list[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
    tracks = [p if p is None else p[:, :2] for p in lm.detect(frames, video=True)]
    return list(lm.fill_missing(tracks)[0])


def evaluate(
    data_dir: Path | str,
    profile: str = "cpu",
    clips: int = 6,
    looks: tuple[str, ...] = LOOKS,
    screenshots: Path | None = None,
) -> dict[str, Any]:
    avatar, rig, rig_s, trained_now = _model(Path(data_dir), profile)
    per_clip = [
        _clip_figures(avatar, rig, clip, looks)
        for clip in clips_in(Path(data_dir) / "heldout")[:clips]
    ]
    summary: dict[str, Any] = {}
    for name in ("2d", *looks):
        rows = [c[name] for c in per_clip]
        summary[name] = {
            key: round(float(np.mean([r[key] for r in rows])), 3) for key in rows[0] if key != "lag"
        }
        summary[name]["lag_mean_abs"] = round(float(np.mean([abs(r["lag"]) for r in rows])), 2)
    for look in looks:
        ratio = summary[look]["opening_corr"] / max(summary["2d"]["opening_corr"], 1e-9)
        summary[look]["opening_corr_vs_2d"] = round(ratio, 3)
    if screenshots is not None:
        summary["screenshots"] = save_screenshots(avatar, rig, screenshots, looks)
    return {
        "profile": profile,
        "clips": len(per_clip),
        "rig_build_seconds": round(rig_s, 2),
        "neutral_frame": rig.neutral,
        "teeth_frame": rig.teeth_frame,
        "summary": summary,
        "per_clip": per_clip,
        "trained_now": trained_now,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save_screenshots(avatar: FaceRig, rig: Rig, folder: Path, looks: tuple[str, ...]) -> list[str]:
    """One PNG per look: the mouth closed, open, and open seen from 15 degrees (512 wide;
    the quality report shows the same frames, ``stills.report``)."""
    shots = stills.frames(rig, avatar.arrays["shapes"], looks)
    return [stills.write_sheet(folder / f"face3d_{look}.png", shots[look]) for look in looks]
