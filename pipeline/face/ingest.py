"""Ingest training footage into a work dir: frames, face track, crops, audio features.

Everything is written as files next to ``manifest.json``:

- ``frames/NNNNNN.jpg``: the template frames (quality 95), in order over all clips;
- ``points.npy`` (N, 478, 2) FaceMesh per frame; ``transforms.npy`` (N, 2, 3) pixels to
  canonical units, fitted on temporally smoothed rigid points (stabilised);
- ``shapes.npy`` (N, 51, 2) canonical lips + chin; ``crops.npy`` (N, h, w, 3) stabilised
  canonical lower-face crops (RGB);
- ``mel.npy`` (4N, 80) log-mel rows aligned to frames; ``energy.npy`` (N,) level in dB;
- the manifest: clips (frame ranges), crop box, loop points (pauses with a neutral mouth).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter1d

from compliance import media
from compliance.progress import Progress

from . import features
from . import landmarks as lm
from .profiles import FaceProfile, profile

CROP_BOX = (-0.8, 0.3, 0.8, 1.9)  # canonical x0, y0, x1, y1 of the lower face (IOD units)
MANIFEST = "manifest.json"
MAX_FRAME = (1920, 1080)  # long and short side of the stored frames: output up to 1080p
RESAMPLE = cv2.INTER_CUBIC  # crops and pastes: bilinear twice blurred a 1:1 round trip
# Damaged frames (``glitched``): a frame whose 64x48 thumbnail differs from the median
# frame of the 4 s around it by more than GLITCH_LEVEL grey levels (mean absolute, 0-255)
# AND GLITCH_RATIO x the clip's median difference. On the 75 GRID training clips a clean
# frame differs by 1.4 (median) to 5 (max); the grey-block frames that two clips decode to
# at their start (no reference frame) by 44-60.
THUMB = (64, 48)
GLITCH_LEVEL = 12.0
GLITCH_RATIO = 4.0
GLITCH_WINDOW_S = 2.0


@dataclass
class Clip:
    count: int  # frames
    size: tuple[int, int]  # (width, height)
    fps: float
    points: npt.NDArray[Any]  # (n, 478, 2)
    found: npt.NDArray[Any]  # (n,) bool
    mel: npt.NDArray[Any]  # (4n, 80)
    energy: npt.NDArray[Any]  # (n,)
    glitched: int = 0  # damaged frames replaced by their nearest good neighbour


def crop_affine(canonical: npt.NDArray[Any], scale: float) -> npt.NDArray[Any]:
    """2x3 pixels -> crop pixels, given pixels -> canonical units."""
    x0, y0 = CROP_BOX[0], CROP_BOX[1]
    s = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float32)
    linear = s[:, :2] @ canonical[:, :2]
    shift = s[:, :2] @ canonical[:, 2] + s[:, 2]
    return np.hstack([linear, shift[:, None]]).astype(np.float32)


def crop_size(scale: float) -> tuple[int, int]:
    """(width, height) of canonical crops at ``scale`` pixels per IOD."""
    x0, y0, x1, y1 = CROP_BOX
    return round((x1 - x0) * scale), round((y1 - y0) * scale)


def fit_size(width: int, height: int) -> tuple[int, int]:
    """The stored frame size: the footage's own, shrunk (never enlarged) to fit 1080p in
    either orientation; even sides for the encoder."""
    long_side, short_side = max(width, height), min(width, height)
    scale = min(1.0, MAX_FRAME[0] / long_side, MAX_FRAME[1] / short_side)
    if scale >= 1.0:
        return width, height
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def fitted(rgb: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A frame at its stored size (``fit_size``)."""
    size = fit_size(rgb.shape[1], rgb.shape[0])
    if size == (rgb.shape[1], rgb.shape[0]):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def glitched(thumbs: npt.NDArray[Any], fps: float) -> npt.NDArray[np.bool_]:
    """Frames that are not a picture of the scene: decoding damage such as the grey blocks
    of a stream cut before its reference frame. ``thumbs`` (n, h, w, 3): each frame shrunk
    to ``THUMB``. A frame is damaged when it is far (``GLITCH_LEVEL``, ``GLITCH_RATIO``)
    from the median frame of the ``GLITCH_WINDOW_S`` seconds either side of it: a talking
    person changes a small part of the picture, damage most of it, and a median over
    seconds ignores a damaged run shorter than half its window."""
    n = len(thumbs)
    if n == 0:
        return np.zeros(0, bool)
    x = thumbs.astype(np.float32)
    half, step = max(1, round(GLITCH_WINDOW_S * fps)), max(1, round(fps))
    centres = np.arange(0, n, step)  # one median a second, each frame uses the nearest
    medians = np.stack([np.median(x[max(0, c - half) : c + half + 1], axis=0) for c in centres])
    nearest = np.clip(np.round(np.arange(n) / step).astype(int), 0, len(centres) - 1)
    distance = np.abs(x - medians[nearest]).mean(axis=(1, 2, 3))
    limit = max(GLITCH_LEVEL, GLITCH_RATIO * float(np.median(distance)))
    bad: npt.NDArray[np.bool_] = distance > limit
    return bad


def read_clip(path: str | os.PathLike[str], frames_dir: Path, first: int) -> Clip:
    """Track one clip, writing its frames (at most 1080p) as JPEGs numbered from ``first``
    as they stream by: memory stays one frame whatever the footage's length.

    Damaged frames (``glitched``) count as frames without a face: their landmarks come
    from the nearest good frame, and so does their JPEG, so no template loop, mouth crop or
    3D texture is ever cut from them (the clip holds that picture for their duration)."""
    info = media.video_facts(path)
    size = (0, 0)
    thumbs: list[npt.NDArray[Any]] = []

    def name(i: int) -> str:
        return os.fspath(frames_dir / f"{first + i:06d}.jpg")

    def stream() -> Iterator[npt.NDArray[Any]]:
        nonlocal size
        for i, decoded in enumerate(media.frames(path)):
            rgb = fitted(decoded)
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            cv2.imwrite(name(i), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            thumbs.append(cv2.resize(rgb, THUMB, interpolation=cv2.INTER_AREA))
            size = (rgb.shape[1], rgb.shape[0])
            yield rgb

    tracks = [p if p is None else p[:, :2] for p in lm.detect(stream(), video=True)]
    fps = float(info.fps or 25.0)
    damaged = glitched(np.stack(thumbs), fps) if thumbs else np.zeros(0, bool)
    tracks = [None if bad else p for p, bad in zip(tracks, damaged, strict=True)]
    points, found = lm.fill_missing(tracks)
    good = np.flatnonzero(found)
    for i in np.flatnonzero(damaged):
        shutil.copyfile(name(int(good[np.abs(good - i).argmin()])), name(int(i)))
    samples = media.audio(path, features.RATE)
    mel = features.log_mel(samples, features.RATE, len(tracks), fps)
    energy = features.energy_db(samples, features.RATE, len(tracks), fps)
    return Clip(len(tracks), size, fps, points, found, mel, energy, int(damaged.sum()))


def native_scale(points: npt.NDArray[Any]) -> float:
    """Crop pixels per IOD: the footage's own largest inter-ocular distance (pixels), so a
    crop is never coarser than the frame it came from and a pasted mouth is never enlarged
    (scale <= 1.0) in any frame."""
    return float(np.ceil(lm.inter_ocular(points).max()))


def stabilised_transforms(
    points: npt.NDArray[Any], reference: npt.NDArray[Any], sigma: float = 1.0
) -> npt.NDArray[Any]:
    """Per-frame pixels -> canonical transforms from temporally smoothed rigid points."""
    rigid = gaussian_filter1d(points[:, list(lm.STABLE)], sigma, axis=0, mode="nearest")
    return np.stack([lm.umeyama(r, reference) for r in rigid])


def loop_points(
    energy: npt.NDArray[Any], openings: npt.NDArray[Any], silence_db: float
) -> list[int]:
    """Frames (clip-relative) in a pause with a near-closed mouth: where the loop turns."""
    quiet = features.silence(energy, silence_db)
    closed = openings <= np.percentile(openings, 40)
    good = np.flatnonzero(quiet & closed)
    return [int(i) for i in good]


def ingest(
    videos: Sequence[str | os.PathLike[str]],
    work_dir: str | os.PathLike[str],
    settings: FaceProfile | str = "cpu",
    progress: Progress | None = None,
) -> Path:
    """Ingest one or more clips (joined in order) into ``work_dir``; return the manifest."""
    cfg = profile(settings)
    report = progress or (lambda fraction, message: None)
    work = Path(work_dir)
    (work / "frames").mkdir(parents=True, exist_ok=True)
    clips: list[dict[str, Any]] = []
    arrays: dict[str, list[npt.NDArray[Any]]] = {
        k: [] for k in ("points", "found", "mel", "energy")
    }
    total = 0
    fps = 25.0
    size = (0, 0)
    for n, path in enumerate(videos):
        clip = read_clip(path, work / "frames", total)
        fps, size = clip.fps, clip.size
        clips.append(
            {
                "source": os.fspath(path),
                "start": total,
                "end": total + clip.count,
                "glitched": clip.glitched,
            }
        )
        for key in arrays:
            arrays[key].append(getattr(clip, key))
        total += clip.count
        held = f", {clip.glitched} damaged held" if clip.glitched else ""
        message = f"tracked {Path(path).name} ({clip.count} frames{held})"
        report(0.8 * (n + 1) / len(videos), message)
    data = {k: np.concatenate(v) for k, v in arrays.items()}
    manifest = _finish(work, cfg, clips, data, fps, size)
    report(1.0, f"ingested {total} frames")
    return manifest


def _finish(
    work: Path,
    cfg: FaceProfile,
    clips: list[dict[str, Any]],
    data: dict[str, npt.NDArray[Any]],
    fps: float,
    size: tuple[int, int],
) -> Path:
    points = data["points"]
    reference = lm.reference_stable(points)
    transforms = np.concatenate(
        [stabilised_transforms(points[c["start"] : c["end"]], reference) for c in clips]
    )
    shapes = np.stack(
        [lm.apply(a, p[list(lm.SHAPE)]) for a, p in zip(transforms, points, strict=True)]
    )
    openings = lm.opening(points)
    for c in clips:
        s, e = c["start"], c["end"]
        c["loop_points"] = loop_points(data["energy"][s:e], openings[s:e], cfg.silence_db)
    scale = native_scale(points)
    crops = _write_crops(work, scale, transforms)
    np.save(work / "points.npy", points.astype(np.float32))
    np.save(work / "found.npy", data["found"])
    np.save(work / "transforms.npy", transforms.astype(np.float32))
    np.save(work / "shapes.npy", shapes.astype(np.float32))
    np.save(work / "mel.npy", data["mel"])
    np.save(work / "energy.npy", data["energy"])
    manifest = {
        "version": 1,
        "fps": fps,
        "size": list(size),
        "frames": int(len(points)),
        "clips": clips,
        "reference": reference.tolist(),
        "crop_box": list(CROP_BOX),
        "crop_scale": scale,
        "crop_size": list(crops),
        "face_found": float(np.mean(data["found"])),
    }
    tmp = work / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, work / MANIFEST)
    return work / MANIFEST


def _write_crops(work: Path, scale: float, transforms: npt.NDArray[Any]) -> tuple[int, int]:
    width, height = crop_size(scale)
    # numpy's stubs declare open_memmap without types
    out = np.lib.format.open_memmap(  # type: ignore[no-untyped-call]
        work / "crops.npy", mode="w+", dtype=np.uint8, shape=(len(transforms), height, width, 3)
    )
    for i, affine in enumerate(transforms):
        bgr = cv2.imread(os.fspath(work / "frames" / f"{i:06d}.jpg"))
        crop = cv2.warpAffine(
            bgr,
            crop_affine(affine, scale),
            (width, height),
            flags=RESAMPLE,
            borderMode=cv2.BORDER_REPLICATE,
        )
        out[i] = crop[..., ::-1]
    out.flush()
    return width, height


def load(work_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """(manifest, arrays) of an ingested work dir; crops are memory-mapped."""
    work = Path(work_dir)
    manifest = json.loads((work / MANIFEST).read_text())
    names = ("points", "found", "transforms", "shapes", "mel", "energy")
    arrays = {n: np.load(work / f"{n}.npy") for n in names}
    arrays["crops"] = np.load(work / "crops.npy", mmap_mode="r")
    return manifest, arrays
