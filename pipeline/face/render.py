"""Audio in -> frames out on the looped template.

For each output frame: the template frame comes from the customer's footage, played
forwards and backwards between pauses (loop points); the audio model predicts the
lower-face shape (smoothed, pulled to the neutral closed mouth in silence); the closest
real mouth of the training footage is chosen with a Viterbi search that prefers to keep
playing real mouth motion (no jitter); that stabilised crop is colour-matched to the
template and blended back with a feathered mask through the inverse stabilising transform.

``render_frames`` returns RGB frames (source size) for evaluation and benchmarks;
``render_video`` composites, encodes and stamps the final file (compliance.stamp).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter1d

from compliance import media
from compliance.progress import Progress
from compliance.stamping import ComplianceSettings, ContentSpec, StampRecord, stamp

from . import features, ingest
from . import landmarks as lm
from .composite import CompositeOptions, Compositor
from .train import Trained, load_checkpoint, predict

MOUTH_CENTRE = (0.0, 1.12)  # canonical centre of the blended region (IOD units)
MOUTH_RADII = (0.56, 0.48)


@dataclass
class FaceRig:
    """An ingested footage dir and its trained model, ready to render."""

    work: Path
    manifest: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]
    trained: Trained
    db: npt.NDArray[Any]  # (N, K) shape coefficients of the training frames
    usable: npt.NDArray[Any]  # (N,) frames whose face was detected (retrieval candidates)

    @classmethod
    def load(cls, ingest_dir: Path | str, checkpoint: Path | str | None = None) -> FaceRig:
        work = Path(ingest_dir)
        manifest, arrays = ingest.load(work)
        trained = load_checkpoint(checkpoint or work / "model" / "model.pt")
        db = trained.space.encode(arrays["shapes"])
        return cls(work, manifest, arrays, trained, db, arrays["found"].astype(bool))

    @property
    def fps(self) -> float:
        return float(self.manifest["fps"])

    def template_frame(self, index: int) -> npt.NDArray[Any]:
        bgr = cv2.imread(os.fspath(self.work / "frames" / f"{index:06d}.jpg"))
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class Timer:
    """Accumulated wall time per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def predict_shapes(
    avatar: FaceRig, samples: npt.NDArray[Any], rate: int, n_frames: int
) -> npt.NDArray[Any]:
    """(T, K) shape coefficients for the audio: model, smoothing, silence gating."""
    t = avatar.trained
    mel = features.log_mel(samples, rate, n_frames, avatar.fps)
    coefs = predict(t.model, (mel - t.mel_mean) / t.mel_std)
    if t.cfg.smooth_sigma > 0:
        coefs = gaussian_filter1d(coefs, t.cfg.smooth_sigma, axis=0, mode="nearest")
    return gate_silence(coefs, t, features.energy_db(samples, rate, n_frames, avatar.fps))


def gate_silence(
    coefs: npt.NDArray[Any], trained: Trained, level_db: npt.NDArray[Any]
) -> npt.NDArray[Any]:
    """Pull the shape to the neutral closed mouth wherever the audio is silent."""
    quiet = features.silence(level_db, trained.cfg.silence_db).astype(np.float32)
    weight = np.clip(gaussian_filter1d(quiet, 1.0, mode="nearest") * 1.5, 0, 1)[:, None]
    return (1 - weight) * coefs + weight * trained.neutral[None]


def select_mouths(avatar: FaceRig, coefs: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Training frame per output frame: nearest shapes, Viterbi-smoothed.

    Continuing the previous choice's clip (next frame) or holding it costs nothing;
    any other jump costs ``jump_cost`` times the typical nearest-neighbour distance.
    """
    cfg = avatar.trained.cfg
    scale = avatar.trained.space.scale
    pool = np.flatnonzero(avatar.usable)
    query, keys = coefs * scale, avatar.db[pool] * scale
    dist = (query**2).sum(1)[:, None] + (keys**2).sum(1)[None] - 2 * query @ keys.T
    dist = np.maximum(dist, 0.0)
    k = min(cfg.candidates, len(pool))
    cand = np.argpartition(dist, k - 1, axis=1)[:, :k]
    cost = np.take_along_axis(dist, cand, 1)
    jump = cfg.jump_cost * float(np.median(cost[:, 0]) + 1e-9) * 10
    frames = pool[cand]
    total, back = cost[0].copy(), np.zeros(cand.shape, int)
    for t in range(1, len(cand)):
        step = frames[t][None, :] - frames[t - 1][:, None]  # (prev, cur)
        trans = np.where((step == 1) | (step == 0), 0.0, jump)
        options = total[:, None] + trans
        back[t] = options.argmin(0)
        total = options.min(0) + cost[t]
    path = np.empty(len(cand), int)
    path[-1] = int(total.argmin())
    for t in range(len(cand) - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return frames[np.arange(len(cand)), path]


def template_indices(manifest: dict[str, Any], n: int, start: int = 0) -> npt.NDArray[Any]:
    """``n`` template frames from ``start``: forwards, then backwards at the last pause, ..."""
    loops = [c["start"] + p for c in manifest["clips"] for p in c["loop_points"]]
    last = manifest["frames"] - 1
    lo = min(loops) if loops else 0
    hi = max(loops) if loops and max(loops) - lo > 2 * manifest["fps"] else last
    out, pos, step = np.empty(n, int), min(start, hi), 1
    for i in range(n):
        out[i] = pos
        if (step == 1 and pos >= hi) or (step == -1 and pos <= lo):
            step = -step
        pos += step
    return out


def mouth_mask(cfg_scale: float, feather: float, size: tuple[int, int]) -> npt.NDArray[Any]:
    """Feathered elliptical mask of the lower face in crop pixels (float32, 0..1)."""
    width, height = size
    x0, y0 = ingest.CROP_BOX[0], ingest.CROP_BOX[1]
    centre = ((MOUTH_CENTRE[0] - x0) * cfg_scale, (MOUTH_CENTRE[1] - y0) * cfg_scale)
    axes = tuple((r - feather) * cfg_scale for r in MOUTH_RADII)
    mask = np.zeros((height, width), np.float32)
    cv2.ellipse(
        mask,
        (round(centre[0]), round(centre[1])),
        (round(axes[0]), round(axes[1])),
        0,
        0,
        360,
        1.0,
        -1,
    )
    sigma = feather * cfg_scale / 2
    return cv2.GaussianBlur(mask, (0, 0), sigma)


class Blender:
    """Pastes stabilised mouth crops into template frames."""

    def __init__(self, avatar: FaceRig) -> None:
        self.avatar = avatar
        self.scale = float(avatar.manifest["crop_scale"])
        self.size = tuple(avatar.manifest["crop_size"])
        self.mask = mouth_mask(self.scale, avatar.trained.cfg.feather, self.size)
        self.ring = (self.mask > 0.02) & (self.mask < 0.5)

    def paste(
        self,
        frame: npt.NDArray[Any],
        template: int,
        mouth: int,
        offset: npt.NDArray[Any] | None = None,
    ) -> npt.NDArray[Any]:
        """Blend training mouth ``mouth`` into ``frame`` (template frame ``template``),
        moved by ``offset`` (canonical units) to where the predicted lips are."""
        affine = ingest.crop_affine(self.avatar.arrays["transforms"][template], self.scale)
        crop = np.asarray(self.avatar.arrays["crops"][mouth], np.float32)
        own = cv2.warpAffine(
            frame, affine, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ).astype(np.float32)
        gain = own[self.ring].mean(0) / np.maximum(crop[self.ring].mean(0), 1.0)
        crop = crop * np.clip(gain, 0.6, 1.6)
        return self._blend(frame, crop, affine, np.zeros(2) if offset is None else offset)

    def _blend(
        self,
        frame: npt.NDArray[Any],
        crop: npt.NDArray[Any],
        affine: npt.NDArray[Any],
        offset: npt.NDArray[Any],
    ) -> npt.NDArray[Any]:
        inverse = cv2.invertAffineTransform(affine)
        w, h = self.size
        corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float32)
        pts = corners @ inverse[:, :2].T + inverse[:, 2]
        x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int), 0)
        x1 = min(int(np.ceil(pts[:, 0].max())), frame.shape[1])
        y1 = min(int(np.ceil(pts[:, 1].max())), frame.shape[0])
        if x1 <= x0 or y1 <= y0:
            return frame
        shifted = inverse.copy()
        shifted[:, 2] -= (x0, y0)
        roi = (x1 - x0, y1 - y0)
        moved = shifted.copy()
        moved[:, 2] -= moved[:, :2] @ (offset * self.scale)
        patch = cv2.warpAffine(
            crop, moved, roi, flags=ingest.RESAMPLE, borderMode=cv2.BORDER_REPLICATE
        )
        alpha = cv2.warpAffine(self.mask, shifted, roi, flags=cv2.INTER_LINEAR)[..., None]
        out = frame.copy()
        region = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(alpha * patch + (1 - alpha) * region + 0.5, 0, 255)
        return out


@dataclass(frozen=True)
class Plan:
    """What each output frame is made of."""

    templates: npt.NDArray[Any]  # template frame per output frame
    mouths: npt.NDArray[Any]  # training mouth per output frame
    coefs: npt.NDArray[Any]  # predicted shape coefficients
    offsets: npt.NDArray[Any]  # (T, 2) predicted minus retrieved lip centre (canonical units)


def frame_count(avatar: FaceRig, samples: npt.NDArray[Any], rate: int) -> int:
    return max(1, int(round(len(samples) / rate * avatar.fps)))


def plan(avatar: FaceRig, samples: npt.NDArray[Any], rate: int, start: int = 0, n: int = 0) -> Plan:
    n = n or frame_count(avatar, samples, rate)
    coefs = predict_shapes(avatar, samples, rate, n)
    mouths = select_mouths(avatar, coefs)
    lips = slice(0, len(lm.LIPS))
    predicted = avatar.trained.space.decode(coefs)[:, lips].mean(1)
    offsets = predicted - avatar.arrays["shapes"][mouths, lips].mean(1)
    offsets = gaussian_filter1d(offsets, 1.0, axis=0, mode="nearest")
    return Plan(template_indices(avatar.manifest, n, start), mouths, coefs, offsets)


def loop_order(n: int) -> list[int]:
    """Which of ``n // 2 + 1`` rendered frames each of ``n`` output frames shows, for a clip
    that loops without a seam: forwards, then back, ending one step after where it began
    (0, 1, .., k, k-1, .., 1, then 0 again as the player loops; an odd ``n`` holds k twice)."""
    k = n // 2
    order = [*range(k + 1), *range(k - 1, 0, -1)]
    if n % 2 and n > 1:
        order.insert(k + 1, k)
    return order[: max(n, 1)]


def iter_frames(
    avatar: FaceRig,
    samples: npt.NDArray[Any],
    rate: int,
    start: int = 0,
    timer: Timer | None = None,
    n_frames: int = 0,
    loop: bool = False,
) -> Iterator[npt.NDArray[Any]]:
    """RGB frames (source size) of the avatar saying ``samples`` (``n_frames`` if given).

    ``loop``: the first half is rendered, then played back (``loop_order``), so the clip
    can repeat seamlessly: the Q&A avatar's idle loop (silence, mouth closed)."""
    timer = timer or Timer()
    n = n_frames or frame_count(avatar, samples, rate)
    order = loop_order(n) if loop else list(range(n))
    with timer.stage("face_model"):
        p = plan(avatar, samples, rate, start, max(order) + 1)
    blender = Blender(avatar)
    for i in order:  # a frame played back is blended again (no frame cache to hold)
        with timer.stage("blend"):
            frame = avatar.template_frame(int(p.templates[i]))
            frame = blender.paste(frame, int(p.templates[i]), int(p.mouths[i]), p.offsets[i])
        yield frame


def render_frames(
    avatar: FaceRig, samples: npt.NDArray[Any], rate: int, **options: Any
) -> list[npt.NDArray[Any]]:
    """``iter_frames`` as a list (``start``, ``timer``, ``n_frames`` as there)."""
    return list(iter_frames(avatar, samples, rate, **options))


def render_video(
    avatar: FaceRig,
    samples: npt.NDArray[Any],
    rate: int,
    output: str | os.PathLike[str],
    content: ContentSpec,
    settings: ComplianceSettings,
    composite: CompositeOptions | None = None,
    progress: Progress | None = None,
    frames: Iterator[npt.NDArray[Any]] | None = None,
    overlay: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None,
    loop: bool = False,
) -> StampRecord:
    """Render, composite, encode and stamp the final MP4 (the record for the registry).

    ``frames`` replaces the 2D frames (a 3D look's, ``pipeline.face3d.render``): the
    compositing, encoding and stamping stay the same. ``overlay`` draws on each composited
    RGB frame before stamping (a live segment's product card), so the labels and the
    watermark are applied to the final pictures. ``loop`` as in ``iter_frames``."""
    report = progress or (lambda fraction, message: None)
    compositor = Compositor(avatar, composite or CompositeOptions())
    total = frame_count(avatar, samples, rate)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dhf-render-", dir=output.parent) as tmp:
        wav = Path(tmp) / "voice.wav"
        media.write_wav(wav, samples, rate)
        raw = Path(tmp) / "raw.mp4"
        writer = media.FrameWriter(raw, compositor.size, avatar.fps, wav, {}, crf=14)
        try:
            source = frames if frames is not None else iter_frames(avatar, samples, rate, loop=loop)
            for i, frame in enumerate(source):
                picture = compositor.apply(frame)
                if overlay is not None:
                    picture = overlay(picture)
                writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
                if i % 25 == 0:
                    report(0.6 * i / total, "rendering")
        finally:
            writer.close()
            compositor.close()
        return stamp(raw, output, content, settings, lambda f, stage: report(0.6 + 0.4 * f, stage))
