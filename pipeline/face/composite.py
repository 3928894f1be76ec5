"""Compositing of rendered frames: framing, background, colour tone, 3D LUT, cartoon style.

``Compositor(avatar, CompositeOptions(...)).apply(rgb)`` turns a source-size RGB frame into the
output frame. Framing is fixed per render from the footage's median face box (no jitter):
``half`` (head and shoulders to mid-torso), ``full`` (the whole frame, when Pose finds
both ankles in the footage; otherwise half), ``source`` (largest crop of the output aspect
centred on the face). The background is replaced through SelfieSegmentation (mask
smoothed over time); tone presets are per-channel curves plus saturation; a custom look
is a ``.cube`` 3D LUT (trilinear).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

TONES = ("natural", "warm", "cool", "vivid", "soft", "mono")


@dataclass(frozen=True)
class CompositeOptions:
    size: tuple[int, int] | None = None  # output (width, height); None keeps the crop's size
    framing: str = "source"  # "source" | "half" | "full"
    background: tuple[int, int, int] | str | None = None  # RGB colour or image path; None keeps
    tone: str = "natural"  # one of TONES
    lut: str | None = None  # path of a .cube 3D LUT applied after the tone
    style: str = "real"  # "real" | "cartoon"


def _curve(gain: float = 1.0, lift: float = 0.0, gamma: float = 1.0) -> npt.NDArray[Any]:
    x = np.arange(256, dtype=np.float32) / 255
    return np.clip((lift + (1 - lift) * x**gamma) * gain * 255, 0, 255).astype(np.uint8)


@functools.cache
def tone_tables(name: str) -> tuple[npt.NDArray[Any], float]:
    """(256x1x3 per-channel curve for cv2.LUT, saturation factor) of a preset."""
    if name not in TONES:
        raise ValueError(f"unknown colour tone {name!r}; choose one of {', '.join(TONES)}")
    curves = {
        "natural": ((1, 0, 1), (1, 0, 1), (1, 0, 1), 1.0),
        "warm": ((1.06, 0, 0.97), (1.0, 0, 1), (0.9, 0, 1.04), 1.05),
        "cool": ((0.92, 0, 1.03), (1.0, 0, 1), (1.06, 0, 0.97), 0.95),
        "vivid": ((1.0, 0, 1.08), (1.0, 0, 1.08), (1.0, 0, 1.08), 1.3),
        "soft": ((0.97, 0.06, 0.95), (0.97, 0.06, 0.95), (0.97, 0.06, 0.95), 0.85),
        "mono": ((1, 0, 1), (1, 0, 1), (1, 0, 1), 0.0),
    }[name]
    table = np.stack([_curve(*c) for c in curves[:3]], axis=-1)[:, None, :]
    return np.ascontiguousarray(table), float(curves[3])


def apply_tone(rgb: npt.NDArray[Any], name: str) -> npt.NDArray[Any]:
    table, saturation = tone_tables(name)
    out = cv2.LUT(rgb, table)
    if saturation != 1.0:
        gray = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        out = cv2.addWeighted(out, saturation, gray, 1.0 - saturation, 0.0)
    return out


def load_cube(path: str | os.PathLike[str]) -> npt.NDArray[Any]:
    """A .cube 3D LUT as an (N, N, N, 3) float32 array indexed [b, g, r] in 0..1."""
    size, lo, hi, rows = 0, np.zeros(3), np.ones(3), []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#") or parts[0] == "TITLE":
            continue
        if parts[0] == "LUT_3D_SIZE":
            size = int(parts[1])
        elif parts[0] == "DOMAIN_MIN":
            lo = np.array(parts[1:4], float)
        elif parts[0] == "DOMAIN_MAX":
            hi = np.array(parts[1:4], float)
        elif parts[0][0].isdigit() or parts[0][0] in "-.":
            rows.append([float(v) for v in parts[:3]])
    if size < 2 or len(rows) != size**3:
        raise ValueError(f"{path}: not a 3D .cube LUT ({len(rows)} entries for size {size})")
    table = (np.array(rows, np.float32) - lo) / (hi - lo)
    return table.reshape(size, size, size, 3)  # red varies fastest


def trilinear(rgb: npt.NDArray[Any], table: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Trilinear interpolation of a 3D LUT at float RGB values in 0..255: (M, 3) -> (M, 3)."""
    n = table.shape[0]
    pos = rgb.astype(np.float32) * ((n - 1) / 255)
    base = np.minimum(pos.astype(np.int32), n - 2)
    frac = pos - base
    out = np.zeros_like(pos)
    for corner in range(8):
        bits = np.array([(corner >> k) & 1 for k in range(3)])  # r, g, b offsets
        weight = np.prod(np.where(bits, frac, 1 - frac), axis=1, keepdims=True)
        idx = base + bits
        out += weight * table[idx[:, 2], idx[:, 1], idx[:, 0]]
    return out


@functools.lru_cache(maxsize=4)
def _dense(path: str) -> npt.NDArray[np.uint8]:
    """The LUT sampled at every 7-bit RGB value (128^3 entries, uint8): one lookup a pixel."""
    levels = np.arange(128, dtype=np.float32) * 2 + 0.5
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    values = trilinear(grid, load_cube(path)) * 255 + 0.5
    clipped: npt.NDArray[np.floating[Any]] = np.clip(values, 0, 255)
    return clipped.astype(np.uint8)


def apply_lut(rgb: npt.NDArray[Any], path: str | os.PathLike[str]) -> npt.NDArray[np.uint8]:
    """Apply a .cube LUT (trilinear, sampled at 7 bits per channel) to a uint8 RGB image."""
    q = (rgb >> 1).astype(np.int32)
    index = (q[..., 0] << 14) | (q[..., 1] << 7) | q[..., 2]
    graded: npt.NDArray[np.uint8] = _dense(os.fspath(path))[index]
    return graded


def cartoon(rgb: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """2D cartoon look: smoothed, posterised colour with dark ink outlines."""
    h, w = rgb.shape[:2]
    small = cv2.pyrDown(rgb)
    for _ in range(2):
        small = cv2.bilateralFilter(small, 7, 50, 7)
    flat = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    flat = (flat // 36) * 36 + 18
    gray = cv2.medianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 5)
    edges = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 5)
    return np.where(edges[..., None] > 0, flat, flat // 4).astype(np.uint8)


def full_body_visible(rgb: npt.NDArray[Any]) -> bool:
    """Whether Pose sees both ankles inside the picture (the footage allows full body)."""
    import mediapipe as mp

    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        result = pose.process(np.ascontiguousarray(rgb))
    if not result.pose_landmarks:
        return False
    ankles = [result.pose_landmarks.landmark[i] for i in (27, 28)]
    return all(a.visibility > 0.5 and 0 <= a.y <= 1 for a in ankles)


def framing_box(
    points: npt.NDArray[Any], frame: tuple[int, int], framing: str, aspect: float, full_ok: bool
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) crop of the source frame for a framing, from the median face."""
    width, height = frame
    face = np.median(points, axis=0)
    top, chin = face[10, 1], face[152, 1]
    cx = float(face[:, 0].mean())
    face_h = chin - top
    if framing == "full" and full_ok:
        box_h = float(height)
        y0 = 0.0
    elif framing in ("half", "full"):
        box_h = min(4.2 * face_h, height)
        y0 = top - 0.7 * face_h
    else:
        box_h = float(min(height, width / aspect))
        y0 = (top + chin) / 2 - box_h / 2
    box_w = min(box_h * aspect, width)
    box_h = box_w / aspect
    x0 = float(np.clip(cx - box_w / 2, 0, width - box_w))
    y0 = float(np.clip(y0, 0, height - box_h))
    return round(x0), round(y0), round(x0 + box_w), round(y0 + box_h)


class Compositor:
    """Applies one CompositeOptions to every frame of a render."""

    def __init__(self, avatar: Any, options: CompositeOptions) -> None:
        self.options = options
        w, h = avatar.manifest["size"]
        out = options.size or (w, h)
        full_ok = options.framing == "full" and full_body_visible(avatar.template_frame(0))
        self.framing_used = "full" if full_ok else options.framing
        self.box = framing_box(
            avatar.arrays["points"], (w, h), options.framing, out[0] / out[1], full_ok
        )
        self.size = options.size or (self.box[2] - self.box[0], self.box[3] - self.box[1])
        if options.lut:
            load_cube(options.lut)  # refuse a bad file before rendering starts
        self._segmenter: Any = None
        self._mask: npt.NDArray[Any] | None = None
        self._background: npt.NDArray[Any] | None = None

    def apply(self, rgb: npt.NDArray[Any]) -> npt.NDArray[Any]:
        x0, y0, x1, y1 = self.box
        out = cv2.resize(rgb[y0:y1, x0:x1], self.size, interpolation=cv2.INTER_AREA)
        if self.options.background is not None:
            out = self.replace_background(out)
        if self.options.tone != "natural":
            out = apply_tone(out, self.options.tone)
        if self.options.lut:
            out = apply_lut(out, self.options.lut)
        if self.options.style == "cartoon":
            out = cartoon(out)
        return out

    def replace_background(self, rgb: npt.NDArray[Any]) -> npt.NDArray[Any]:
        import mediapipe as mp

        if self._segmenter is None:
            self._segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1)
            self._background = self._backdrop(rgb.shape[1], rgb.shape[0])
        mask = self._segmenter.process(np.ascontiguousarray(rgb)).segmentation_mask
        mask = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.5)
        self._mask = mask if self._mask is None else 0.6 * mask + 0.4 * self._mask
        alpha = np.clip((self._mask - 0.3) / 0.4, 0, 1).astype(np.float32)
        assert self._background is not None  # made with the segmenter above
        return cv2.blendLinear(rgb, self._background, alpha, 1.0 - alpha)

    def _backdrop(self, width: int, height: int) -> npt.NDArray[Any]:
        bg = self.options.background
        if isinstance(bg, str):
            image = cv2.imread(bg)
            if image is None:
                raise ValueError(f"cannot read the background image {bg}")
            return np.ascontiguousarray(cv2.resize(image[..., ::-1], (width, height)))
        return np.full((height, width, 3), bg, np.uint8)

    def close(self) -> None:
        if self._segmenter is not None:
            self._segmenter.close()
