"""``dhf eval face``: the DESIGN.md quality protocol for the face pipeline.

Train on ``train/`` clips (ingest + training timed), then drive the avatar with the REAL
audio of every ``heldout/`` clip and score the RENDERED frames, with landmarks
re-detected by FaceMesh, against the real held-out frames; the same figures for the floor,
the plain looped template (training frames played from the start). Metrics:

- LMD: mean over frames and the 40 FACEMESH_LIPS points of the Euclidean distance, each
  point relative to the nose tip (1) and divided by the inter-ocular distance (33-263);
  this counts head pose: a template turned a little from the real clip's pose scores
  as mouth error;
- pose-stabilised LMD: the same distance with each frame's lips mapped into the canonical
  frame by the similarity fitted on its own rigid upper-face points (as the PSNR crop
  below), so only the mouth's own shape and place under the face counts;
- opening: inner-lip gap |p14 - p13| / IOD; Pearson correlation per clip, averaged;
- AV offset: the lag (frames, -6..6) of the best opening cross-correlation, summed over
  clips (positive: the render is late); also the mean absolute per-clip lag;
- mouth-crop PSNR / SSIM: each frame is stabilised on its own rigid upper-face points
  (nose ridge and eye corners, fitted to the real clip's mean) and the fixed box
  x in [-0.45, 0.45], y in [0.62, 1.22] IOD (lips and their surround) compared at
  96 px per IOD.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from compliance import media

from . import features, ingest, train
from . import landmarks as lm
from .render import FaceRig, Timer, render_frames, template_indices

MOUTH_BOX = (-0.45, 0.62, 0.45, 1.22)
BOX_SCALE = 96.0
MAX_LAG = 6
VIDEO_EXTS = (".mp4", ".mpg", ".mov", ".mkv")


def log(message: str) -> None:
    print(f"[face eval] {message}", file=sys.stderr, flush=True)


def work_root(profile: str) -> Path:
    """Where eval keeps its ingest + model (``DHF_FACE_WORK`` overrides); bench reuses it."""
    base = os.environ.get("DHF_FACE_WORK") or os.path.join(tempfile.gettempdir(), "dhf-face")
    return Path(base) / f"eval-{profile}"


def clips_in(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_EXTS)


def prepare(train_dir: Path, profile: str, work: Path, reuse: bool = False) -> dict[str, float]:
    """Ingest and train into ``work``; return the timings (``reuse``: keep a trained one)."""
    work.mkdir(parents=True, exist_ok=True)
    timings = work / "timings.json"
    if reuse and timings.exists() and (work / "model" / "model.pt").exists():
        log(f"reusing the ingest and model in {work}")
        loaded: dict[str, float] = json.loads(timings.read_text())
        return loaded
    started = time.perf_counter()
    ingest.ingest(clips_in(train_dir), work, profile, progress=_ingest_progress)
    ingested = time.perf_counter()
    train.train(work, work / "model", profile, lambda f, m: log(f"train {100 * f:.0f}%: {m}"))
    done = time.perf_counter()
    result = {"ingest_seconds": ingested - started, "train_seconds": done - ingested}
    timings.write_text(json.dumps(result))
    return result


def _ingest_progress(fraction: float, message: str) -> None:
    if fraction >= 1:
        log(f"ingest: {message}")


def track(frames: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """FaceMesh points (N, 478, 2) of a clip, gaps filled from neighbours."""
    tracks = [p if p is None else p[:, :2] for p in lm.detect(frames, video=True)]
    return lm.fill_missing(tracks)[0]


@functools.lru_cache(maxsize=128)
def track_clip(path: Path) -> npt.NDArray[Any]:
    """``track`` of a real clip's frames, once per evaluation (both protocols use it)."""
    return track(list(media.frames(path)))


def mouth_crops(
    frames: list[npt.NDArray[Any]], points: npt.NDArray[Any], reference: npt.NDArray[Any]
) -> list[npt.NDArray[Any]]:
    x0, y0, x1, y1 = MOUTH_BOX
    size = (round((x1 - x0) * BOX_SCALE), round((y1 - y0) * BOX_SCALE))
    shift = np.array([[BOX_SCALE, 0, -x0 * BOX_SCALE], [0, BOX_SCALE, -y0 * BOX_SCALE]])
    out = []
    for rgb, p in zip(frames, points, strict=True):
        canon = lm.to_canonical(p, reference).astype(np.float64)
        affine = np.hstack(
            [shift[:, :2] @ canon[:, :2], (shift[:, :2] @ canon[:, 2] + shift[:, 2])[:, None]]
        )
        out.append(cv2.warpAffine(rgb, affine, size, flags=cv2.INTER_AREA))
    return out


def canonical_lips(points: npt.NDArray[Any], reference: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """(N, 40, 2) lips of each frame in the canonical frame fitted on its rigid points."""
    return np.stack([lm.apply(lm.to_canonical(p, reference), p[list(lm.LIPS)]) for p in points])


def best_lag(real: npt.NDArray[Any], fake: npt.NDArray[Any]) -> tuple[int, npt.NDArray[Any]]:
    """Lag of the best Pearson correlation of ``fake`` shifted against ``real``, and all."""
    scores = np.array([_shifted_corr(real, fake, lag) for lag in range(-MAX_LAG, MAX_LAG + 1)])
    return int(np.nanargmax(scores)) - MAX_LAG, scores


def _shifted_corr(real: npt.NDArray[Any], fake: npt.NDArray[Any], lag: int) -> float:
    a, b = (real[: len(real) - lag], fake[lag:]) if lag >= 0 else (real[-lag:], fake[:lag])
    return _corr(a, b)


def _corr(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def score(
    real: list[npt.NDArray[Any]],
    fake: list[npt.NDArray[Any]],
    real_pts: npt.NDArray[Any],
    reference: npt.NDArray[Any],
) -> dict[str, Any]:
    """All per-clip figures of ``fake`` frames against the real ones."""
    pts = track(fake)
    lmd = np.linalg.norm(lm.normalised_lips(pts) - lm.normalised_lips(real_pts), axis=-1).mean()
    lmd_pose = np.linalg.norm(
        canonical_lips(pts, reference) - canonical_lips(real_pts, reference), axis=-1
    ).mean()
    o_real, o_fake = lm.opening(real_pts), lm.opening(pts)
    lag, lags = best_lag(o_real, o_fake)
    crops_r = mouth_crops(real, real_pts, reference)
    crops_f = mouth_crops(fake, pts, reference)
    psnr = np.mean(
        [
            peak_signal_noise_ratio(a, b, data_range=255)
            for a, b in zip(crops_r, crops_f, strict=True)
        ]
    )
    ssim = np.mean(
        [
            structural_similarity(a, b, channel_axis=2, data_range=255)
            for a, b in zip(crops_r, crops_f, strict=True)
        ]
    )
    return {
        "lmd": float(lmd),
        "lmd_pose": float(lmd_pose),
        "opening_corr": _corr(o_real, o_fake),
        "lag": lag,
        "lag_scores": lags,
        "psnr": float(psnr),
        "ssim": float(ssim),
        "opening_fake_mean": float(o_fake.mean()),
        "opening_real_mean": float(o_real.mean()),
    }


def evaluate(
    train_dir: Path | str,
    heldout_dir: Path | str,
    profile: str = "cpu",
    reuse: bool = False,
    product: bool = True,
    voice_profile: str | None = None,
) -> dict[str, Any]:
    """The real-audio protocol and (``product``) the product path of ``product.py``.

    ``reuse`` keeps an ingest, face model and voice already trained in the work dir."""
    work = work_root(profile)
    log(f"profile {profile}: ingest + train on {train_dir} (work dir {work})")
    timings = prepare(Path(train_dir), profile, work, reuse)
    avatar = FaceRig.load(work)
    heldout = clips_in(Path(heldout_dir))
    result = real_audio(avatar, heldout)
    result = {"profile": profile, "train_clips": len(clips_in(Path(train_dir))), **result}
    result["timing"] = {
        **{k: round(v, 1) for k, v in timings.items()},
        **result.pop("render"),
        "cpu_threads": 2,
    }
    if product:
        from .composite import CompositeOptions
        from .product import product_path, train_voice

        voiced = train_voice(Path(train_dir), work, voice_profile or profile, reuse)
        result["product_path"] = product_path(
            avatar, work / "voice" / "voice.pt", heldout, CompositeOptions()
        )
        result["product_path"].update(voiced)
    result["timing"]["peak_memory_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    result["training_report"] = _training_report(work)
    return result


def real_audio(avatar: FaceRig, heldout: list[Path]) -> dict[str, Any]:
    """Each held-out clip rendered from its real audio, scored against the real frames."""
    per_clip: dict[str, list[dict[str, Any]]] = {"model": [], "template": []}
    render_s, rendered = 0.0, 0
    for n, clip in enumerate(heldout):
        real = list(media.frames(clip))
        samples = media.audio(clip, features.RATE)
        started = time.perf_counter()
        fake = render_frames(avatar, samples, features.RATE, n_frames=len(real), timer=Timer())
        render_s += time.perf_counter() - started
        rendered += len(fake)
        floor = [
            avatar.template_frame(int(i)) for i in template_indices(avatar.manifest, len(real))
        ]
        real_pts = track_clip(clip)
        reference = lm.reference_stable(real_pts)
        per_clip["model"].append(score(real, fake, real_pts, reference))
        per_clip["template"].append(score(real, floor, real_pts, reference))
        m, f = per_clip["model"][-1], per_clip["template"][-1]
        log(
            f"{n + 1}/{len(heldout)} {clip.name}: LMD {m['lmd']:.4f} (floor {f['lmd']:.4f}) "
            f"pose LMD {m['lmd_pose']:.4f} (floor {f['lmd_pose']:.4f}) "
            f"corr {m['opening_corr']:.2f} lag {m['lag']} PSNR {m['psnr']:.1f}"
        )
    model, floor_ = summarise(per_clip["model"]), summarise(per_clip["template"])
    return {
        "heldout_clips": len(heldout),
        "model": model,
        "template_floor": floor_,
        "lmd_ratio": model["lmd"] / floor_["lmd"],
        "lmd_pose_ratio": model["lmd_pose"] / floor_["lmd_pose"],
        "render": {
            "render_fps": round(rendered / max(render_s, 1e-9), 1),
            "render_frames": rendered,
        },
    }


def summarise(clips: list[dict[str, Any]]) -> dict[str, Any]:
    summed = np.sum([c["lag_scores"] for c in clips], axis=0)
    return {
        "lmd": float(np.mean([c["lmd"] for c in clips])),
        "lmd_pose": float(np.mean([c["lmd_pose"] for c in clips])),
        "opening_corr": float(np.mean([c["opening_corr"] for c in clips])),
        "av_offset_frames": int(np.argmax(summed)) - MAX_LAG,
        "av_offset_abs_mean_per_clip": float(np.mean([abs(c["lag"]) for c in clips])),
        "mouth_psnr_db": float(np.mean([c["psnr"] for c in clips])),
        "mouth_ssim": float(np.mean([c["ssim"] for c in clips])),
        "opening_mean": float(np.mean([c["opening_fake_mean"] for c in clips])),
        "opening_mean_real": float(np.mean([c["opening_real_mean"] for c in clips])),
    }


def _training_report(work: Path) -> dict[str, Any]:
    report = json.loads((work / "model" / "report.json").read_text())
    report.pop("history", None)
    return report
