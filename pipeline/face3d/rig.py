"""The 3D rig of an avatar, built from its ingested footage (one training stage).

A rig is one folder (``rig.json``, ``rig.npz`` and three PNGs), made from a face ingest
work dir (``pipeline.face.ingest``):

- the **neutral frame**, chosen automatically: a closed mouth (inner-lip gap in the lowest
  fifth of the footage), frontal (nose tip midway between the eye corners), sharp
  (variance of the Laplacian over the face); its FaceMesh points with depth give the face
  mesh (852 triangles), UVs are the 2D landmarks, the texture is the frame itself;
- the **relief**: hair, ears, neck and shoulders as a grid over the person-segmentation
  mask, inflated by the distance to the mask's edge, with soft alpha at the cut-out; its
  depth at the face outline is matched to the face mesh's, and the face mesh fades into
  it over its outer ring (the same texture underneath, so no seam);
- the **mouth**: the widest-open frame of the footage gives the cavity and teeth (the
  person's own), mapped inside the rendered inner-lip contour, so they open with the jaw;
- **deformation weights**: every vertex near the mouth follows the 51 lip and chin points
  of the audio model's shape (a Gaussian blend, fading out towards the nose and the neck);
  **head weights**: the head and neck follow the footage's head motion, the shoulders not;
- the **eyes**: per footage frame, how closed the lids are (the lid gap over the eye's
  width, against the footage's usual gap) and where the irises look (points 468 and 473
  in the eye's own frame, against the neutral's); the upper-lid vertices' move that
  closes the eye (``lid_move``); the eye openings of the texture with the irises
  inpainted (``sclera``) and each iris as a disc of its own (``iris``), so the renderer
  closes the lids and moves the irises where the person did in the footage;
- the **background**: the neutral frame with the person inpainted away.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.face import ingest
from pipeline.face import landmarks as lm

from . import mesh

VERSION = 2
RIG_JSON = "rig.json"
DEFORM_REACH = 0.45  # the pull fades out this far from the nearest control point
INFLATE = 0.35  # relief depth at its thickest, as a fraction of its half-width


@dataclass(frozen=True)
class Eye:
    """FaceMesh points of one eye: the lids' contours (corner to corner, left to right in
    the picture), the lid pairs measured for the gap, the iris centre and its ring."""

    upper: tuple[int, ...]
    lower: tuple[int, ...]
    corners: tuple[int, int]  # (left, right) in the picture
    pairs: tuple[tuple[int, int], ...]
    iris: int
    ring: tuple[int, ...]


EYES = (
    Eye(  # the person's right eye (the picture's left)
        (246, 161, 160, 159, 158, 157, 173),
        (7, 163, 144, 145, 153, 154, 155),
        (33, 133),
        ((160, 144), (159, 145), (158, 153)),
        468,
        (469, 470, 471, 472),
    ),
    Eye(
        (398, 384, 385, 386, 387, 388, 466),
        (382, 381, 380, 374, 373, 390, 249),
        (362, 263),
        ((387, 373), (386, 374), (385, 380)),
        473,
        (474, 475, 476, 477),
    ),
)
BLINK_SPAN = 0.75  # a lid gap this fraction below the usual one counts as fully closed
BLINK_DEADZONE = 0.15  # closures below this are tracking noise (the lids stay open)
GAZE_LIMIT = (0.12, 0.06)  # iris moves kept within these eye widths (across, up/down)
LID_REACH = 0.5  # the lid skin above the eye follows the lid over this many eye widths


@dataclass
class Rig:
    """A built rig, loaded: everything the renderer and the glTF export need."""

    folder: Path
    size: tuple[int, int]  # (width, height) of the footage
    neutral: int  # the neutral frame's index in the footage
    teeth_frame: int  # the widest-open frame's index
    face: npt.NDArray[np.float32]  # (468, 3) x, y pixels, depth (pixels; negative = nearer)
    face_alpha: npt.NDArray[np.float32]  # (468,) 0 on the outline, 1 inside
    relief: npt.NDArray[np.float32]  # (M, 3)
    relief_alpha: npt.NDArray[np.float32]  # (M,)
    relief_triangles: npt.NDArray[np.int32]
    teeth_uv: npt.NDArray[np.float32]  # (20, 2) inner lip points in the teeth frame (pixels)
    face_deform: npt.NDArray[np.float32]  # (468, 51) lip/chin control weights
    relief_deform: npt.NDArray[np.float32]  # (M, 51)
    face_head: npt.NDArray[np.float32]  # (468,) weight of the head motion
    relief_head: npt.NDArray[np.float32]  # (M,)
    neutral_shape: npt.NDArray[np.float32]  # (51, 2) canonical lips + chin of the neutral
    neutral_transform: npt.NDArray[np.float32]  # (2, 3) pixels -> canonical of the neutral
    blink: npt.NDArray[np.float32]  # (N,) per footage frame: 0 open (as the neutral), 1 shut
    gaze: npt.NDArray[np.float32]  # (N, 2) iris move per footage frame (neutral pixels)
    lid_move: npt.NDArray[np.float32]  # (468, 2) face-vertex move that shuts both eyes
    iris: npt.NDArray[np.float32]  # (2, 4) the irises in the neutral: x, y, depth, radius
    eye_box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the ``sclera``/``iris`` images
    build_seconds: float

    @property
    def triangles(self) -> npt.NDArray[np.int32]:
        return mesh.triangles()

    def image(self, name: str) -> npt.NDArray[np.uint8]:
        """``texture`` (RGBA: the person's soft mask as alpha), ``teeth``, ``background``
        (RGB), ``sclera`` (RGB: the texture's eye openings, irises inpainted) or ``iris``
        (RGBA: the two iris discs, completed under the lids); the last two are the
        ``eye_box`` crop of the frame."""
        bgr = cv2.imread(os.fspath(self.folder / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        if bgr is None:
            raise FileNotFoundError(self.folder / f"{name}.png")
        order = [2, 1, 0, 3][: bgr.shape[2]]
        return np.ascontiguousarray(bgr[..., order])

    def pixels_from_canonical(self) -> npt.NDArray[np.float32]:
        """2x2 linear map of a canonical displacement into neutral-frame pixels."""
        inverse: npt.NDArray[np.float32] = np.linalg.inv(self.neutral_transform[:, :2]).astype(
            np.float32
        )
        return inverse

    @classmethod
    def load(cls, folder: Path | str) -> Rig:
        folder = Path(folder)
        info = json.loads((folder / RIG_JSON).read_text())
        if info.get("version") != VERSION:
            raise ValueError(f"{folder}: rig version {info.get('version')}, expected {VERSION}")
        with np.load(folder / "rig.npz") as data:
            arrays = {k: data[k] for k in data.files}
        return cls(
            folder,
            (int(info["size"][0]), int(info["size"][1])),
            int(info["neutral"]),
            int(info["teeth_frame"]),
            eye_box=tuple(int(v) for v in info["eye_box"]),  # type: ignore[arg-type]
            build_seconds=float(info["build_seconds"]),
            **arrays,
        )


# -- choosing the frames ------------------------------------------------------------------


def frontal_error(points: npt.NDArray[Any]) -> npt.NDArray[np.floating[Any]]:
    """How far the nose tip is from midway between the outer eye corners (IOD units)."""
    tip = points[..., lm.NOSE_TIP, :]
    left = np.linalg.norm(tip - points[..., lm.EYE_R, :], axis=-1)
    right = np.linalg.norm(tip - points[..., lm.EYE_L, :], axis=-1)
    error: npt.NDArray[np.floating[Any]] = np.abs(left - right) / lm.inter_ocular(points)
    return error


def sharpness(rgb: npt.NDArray[Any], points: npt.NDArray[Any]) -> float:
    """Variance of the Laplacian over the face's bounding box."""
    x0, y0 = np.maximum(points.min(0).astype(int), 0)
    x1, y1 = points.max(0).astype(int)
    gray = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_32F).var()) if gray.size else 0.0


def choose_neutral(work: Path, points: npt.NDArray[Any], found: npt.NDArray[Any]) -> list[int]:
    """Candidate neutral frames, best first: closed, frontal, then sharp."""
    gap, eyes = lm.opening(points), eye_openness(points)
    closed = found & (gap <= np.percentile(gap[found], 20))
    awake = closed & (eyes >= 0.9 * np.median(eyes[found]))  # not mid-blink, not squinting
    closed = awake if awake.any() else closed
    pool = np.flatnonzero(closed)
    frontal = pool[np.argsort(frontal_error(points[pool]))][:24]
    sharp = [sharpness(_frame(work, int(i)), points[i]) for i in frontal]
    rank = np.argsort(np.argsort(-np.array(sharp))) + np.arange(len(frontal))  # both ranks
    return [int(frontal[k]) for k in np.argsort(rank, kind="stable")]


def choose_teeth(points: npt.NDArray[Any], found: npt.NDArray[Any]) -> int:
    """A wide-open frontal frame (98th percentile of the gap, not the one outlier)."""
    gap = np.where(found, lm.opening(points), -1.0)
    wide = np.flatnonzero(gap >= np.percentile(gap[found], 98))
    return int(wide[np.argmin(frontal_error(points[wide]))])


def _frame(work: Path, index: int) -> npt.NDArray[np.uint8]:
    bgr = cv2.imread(os.fspath(work / "frames" / f"{index:06d}.jpg"))
    if bgr is None:
        raise FileNotFoundError(work / "frames" / f"{index:06d}.jpg")
    return np.ascontiguousarray(bgr[..., ::-1])


def face_points(rgb: npt.NDArray[Any]) -> npt.NDArray[np.float32] | None:
    """FaceMesh's 478 points (x, y, depth in pixels) of one still frame."""
    return next(lm.detect([rgb], video=False))


# -- geometry -----------------------------------------------------------------------------


def person_mask(rgb: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Soft person mask (0..1) from SelfieSegmentation."""
    import mediapipe as mp

    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1) as seg:
        mask = seg.process(np.ascontiguousarray(rgb)).segmentation_mask
    soft: npt.NDArray[np.float32] = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.2)
    return soft


def relief(
    mask: npt.NDArray[Any], face: npt.NDArray[Any], iod: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """Grid vertices over the mask (x, y, depth), their alpha, and triangles.

    Depth is a dome over the distance to the mask's edge; it is shifted so that at the
    face outline it equals the face mesh's depth there (the two meet). The grid reaches a
    cell past the mask: the soft edge itself is the texture's alpha, per pixel."""
    step = max(2, round(iod / 8))
    solid = (mask > 0.5).astype(np.uint8)
    dist = cv2.distanceTransform(solid, cv2.DIST_L2, 5)
    depth = -np.sqrt(np.maximum(dist, 0) * max(float(dist.max()), 1.0)) * INFLATE
    cell = np.ones((2 * step + 1, 2 * step + 1), np.uint8)
    keep = cv2.dilate((mask > 0.05).astype(np.uint8), cell) > 0
    xy, tris = mesh.grid_mesh(keep, step)
    ix, iy = xy[:, 0].astype(int), xy[:, 1].astype(int)
    z = depth[iy, ix]
    oval = face[list(mesh.face_oval())]
    ox = np.clip(oval[:, 0].astype(int), 0, mask.shape[1] - 1)
    oy = np.clip(oval[:, 1].astype(int), 0, mask.shape[0] - 1)
    z = z + float(np.median(oval[:, 2] - depth[oy, ox]))
    alpha = np.ones(len(xy), np.float32)
    return np.column_stack([xy, z]).astype(np.float32), alpha, tris


def face_alpha(face: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """1 inside the face, 0 on its outline and 0.5 on the ring next to it (soft seam)."""
    alpha = np.ones(len(face), np.float32)
    oval = set(mesh.face_oval())
    ring = {int(v) for t in mesh.triangles() if oval & set(t.tolist()) for v in t} - oval
    alpha[list(ring)] = 0.5
    alpha[list(oval)] = 0.0
    return alpha


def mouth_line(face: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """(x, y) samples of the line between the closed lips (midway between the inner lips)."""
    upper = face[[i for i in mesh.INNER_LIPS if i in mesh.UPPER_INNER], :2]
    lower = face[[i for i in mesh.INNER_LIPS if i not in mesh.UPPER_INNER], :2]
    xs = np.sort(np.concatenate([upper[:, 0], lower[:, 0]]))
    up = np.interp(xs, *upper[np.argsort(upper[:, 0])].T)
    low = np.interp(xs, *lower[np.argsort(lower[:, 0])].T)
    return xs, (up + low) / 2


def below_mouth(
    points: npt.NDArray[Any], face: npt.NDArray[Any], members: npt.NDArray[Any] | None = None
) -> npt.NDArray[np.bool_]:
    """Whether each point belongs to the lower lip and jaw (else the upper lip side).

    The inner lips touch when the mouth is closed, so geometry alone cannot tell them
    apart: face-mesh points (``members``: their FaceMesh index, -1 for others) on the inner
    lip go by which lip they are."""
    xs, ys = mouth_line(face)
    lower = points[:, 1] > np.interp(points[:, 0], xs, ys)
    if members is not None:
        for index in mesh.INNER_LIPS:
            lower[members == index] = index not in mesh.UPPER_INNER
    return lower


def deform_weights(
    points: npt.NDArray[Any],
    face: npt.NDArray[Any],
    iod: float,
    members: npt.NDArray[Any] | None = None,
) -> npt.NDArray[np.float32]:
    """(n, 51) weights: a vertex moves by this blend of the lip and chin points' moves.

    Inverse-distance weights (exact at the control points) over the controls on the
    vertex's own side of the mouth (the corners count on both), faded out with the
    distance to the nearest control (``DEFORM_REACH``) and above the nose's base."""
    controls = face[list(lm.SHAPE), :2]
    control_ids = np.array(lm.SHAPE)
    side_c = below_mouth(controls, face, control_ids)
    corners = np.isin(control_ids, (61, 291, 78, 308))
    side_v = below_mouth(points[:, :2], face, members)
    d2 = ((points[:, None, :2] - controls[None, :, :2]) ** 2).sum(-1) / iod**2
    allowed = (side_v[:, None] == side_c[None]) | corners[None]
    w = np.where(allowed, 1.0 / (d2 + 1e-4) ** 2, 0.0)
    w /= np.maximum(w.sum(1, keepdims=True), 1e-12)
    fade = np.exp(-np.maximum(np.where(allowed, d2, np.inf).min(1), 0) / DEFORM_REACH**2)
    fade *= np.clip((points[:, 1] - float(face[2, 1])) / (0.08 * iod), 0, 1)
    weights: npt.NDArray[np.float32] = (w * fade[:, None]).astype(np.float32)
    return weights


def head_weights(points: npt.NDArray[Any], chin_y: float, iod: float) -> npt.NDArray[np.float32]:
    """1 for the head, fading to 0 from the chin down to the shoulders."""
    return np.clip(1 - (points[:, 1] - chin_y - 0.3 * iod) / (1.2 * iod), 0, 1).astype(np.float32)


# -- eyes ---------------------------------------------------------------------------------


def eye_openness(points: npt.NDArray[Any]) -> npt.NDArray[np.floating[Any]]:
    """Lid gap over the eye's width (corner to corner), both eyes averaged (about 0.3 open,
    under 0.1 shut, on FaceMesh)."""
    ratios = []
    for eye in EYES:
        top, bottom = zip(*eye.pairs, strict=True)
        gap = np.linalg.norm(points[..., top, :2] - points[..., bottom, :2], axis=-1).mean(-1)
        ratios.append(gap / _eye_width(points, eye))
    out: npt.NDArray[np.floating[Any]] = (ratios[0] + ratios[1]) / 2
    return out


def _eye_width(points: npt.NDArray[Any], eye: Eye) -> npt.NDArray[np.floating[Any]]:
    width: npt.NDArray[np.floating[Any]] = np.linalg.norm(
        points[..., eye.corners[1], :2] - points[..., eye.corners[0], :2], axis=-1
    )
    return width


def _eye_axes(points: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Unit vectors along the eyes (left to right) and across them (downwards), per frame."""
    along = sum(points[..., e.corners[1], :2] - points[..., e.corners[0], :2] for e in EYES)
    along = along / np.maximum(np.linalg.norm(along, axis=-1, keepdims=True), 1e-9)
    down = np.stack([-along[..., 1], along[..., 0]], -1)
    return along, down


def iris_in_eye(points: npt.NDArray[Any]) -> npt.NDArray[np.floating[Any]]:
    """(..., 2) iris centre relative to the eye corners' midpoint, in eye widths along and
    across the eye, both eyes averaged."""
    along, down = _eye_axes(points)
    out = []
    for eye in EYES:
        mid = (points[..., eye.corners[0], :2] + points[..., eye.corners[1], :2]) / 2
        rel = points[..., eye.iris, :2] - mid
        width = _eye_width(points, eye)
        out.append(np.stack([(rel * along).sum(-1), (rel * down).sum(-1)], -1) / width[..., None])
    mean: npt.NDArray[np.floating[Any]] = (out[0] + out[1]) / 2
    return mean


def eye_tracks(
    points: npt.NDArray[Any], found: npt.NDArray[Any], neutral: int, face: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per footage frame: how shut the lids are (0..1) and the irises' move from the
    neutral's, in the neutral frame's pixels (``face``: its still-image points).

    Shut is measured against the footage's usual gap (a gap ``BLINK_SPAN`` below it is
    fully shut; the first ``BLINK_DEADZONE`` is tracking noise); the iris move is held
    through blinks (FaceMesh's iris is a guess under a shut lid), lightly smoothed and
    kept within ``GAZE_LIMIT``."""
    from scipy.ndimage import gaussian_filter1d

    found = np.asarray(found, bool)
    gap = eye_openness(points)
    usual = float(np.median(gap[found]))
    shut = np.clip((usual - gap) / (BLINK_SPAN * usual), 0, 1)
    shut = np.where(found, np.clip((shut - BLINK_DEADZONE) / (1 - BLINK_DEADZONE), 0, 1), 0)
    rel = iris_in_eye(points) - iris_in_eye(points[neutral])
    seen = found & (shut < 0.3)
    frames = np.arange(len(points))
    if seen.any():
        rel = np.stack([np.interp(frames, frames[seen], rel[seen, k]) for k in range(2)], -1)
    else:
        rel = np.zeros((len(points), 2))
    rel = gaussian_filter1d(rel, 1.0, axis=0, mode="nearest")
    rel = np.clip(rel, -np.array(GAZE_LIMIT), np.array(GAZE_LIMIT))
    along, down = _eye_axes(face)
    width = float(np.mean([_eye_width(face, e) for e in EYES]))
    gaze = (rel[:, :1] * along + rel[:, 1:] * down) * width
    return shut.astype(np.float32), gaze.astype(np.float32)


def _lid_line(face: npt.NDArray[Any], eye: Eye, lid: tuple[int, ...]) -> npt.NDArray[Any]:
    """(k, 2) one lid's contour from corner to corner, sorted left to right."""
    line = face[[eye.corners[0], *lid, eye.corners[1]], :2]
    return line[np.argsort(line[:, 0])]


def lid_moves(face: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """(468, 2) the move that shuts both eyes: each upper-lid point down onto the lower
    lid below it, the lid skin above following (fading out over ``LID_REACH`` eye
    widths), the lower lid and everything under it still."""
    xy = face[:468, :2]
    move = np.zeros((468, 2), np.float32)
    for eye in EYES:
        upper, lower = _lid_line(face, eye, eye.upper), _lid_line(face, eye, eye.lower)
        drop = np.interp(upper[:, 0], lower[:, 0], lower[:, 1]) - upper[:, 1]
        x0, x1 = upper[0, 0], upper[-1, 0]
        width = x1 - x0
        above = np.interp(xy[:, 0], upper[:, 0], upper[:, 1]) - xy[:, 1]
        weight = np.clip(1 - above / (LID_REACH * width), 0, 1) ** 2
        weight[(above < -0.5) | (xy[:, 0] <= x0) | (xy[:, 0] >= x1)] = 0
        weight[list(eye.upper)] = 1
        weight[[*eye.lower, *eye.corners]] = 0
        move[:, 1] += weight * np.interp(xy[:, 0], upper[:, 0], drop)
    return move


def iris_discs(face: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """(2, 4) each iris of the neutral: centre x, y, depth, and radius (pixels)."""
    out = []
    for eye in EYES:
        centre = face[eye.iris, :3]
        radius = float(np.linalg.norm(face[list(eye.ring), :2] - centre[:2], axis=1).mean())
        out.append([*centre, radius])
    return np.array(out, np.float32)


def eye_images(
    rgb: npt.NDArray[Any], face: npt.NDArray[Any], iris: npt.NDArray[Any]
) -> tuple[tuple[int, int, int, int], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """The eyes' box, the frame's crop there with the irises inpainted inside the eye
    openings (RGB), and the iris discs (RGBA: soft-edged alpha; the part a lid hides is
    filled with the iris's mean visible colour, so a moved iris stays whole)."""
    corners = face[[i for e in EYES for i in (*e.upper, *e.lower, *e.corners)], :2]
    pad = int(np.ceil(iris[:, 3].max() * 2)) + 3
    h, w = rgb.shape[:2]
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + pad, (w, h))
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    opening = np.zeros(crop.shape[:2], np.uint8)
    for eye in EYES:
        ring = face[[eye.corners[0], *eye.upper, eye.corners[1], *eye.lower[::-1]], :2]
        cv2.fillPoly(opening, [np.round(ring - (x0, y0)).astype(np.int32)], (1,))
    yy, xx = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]]
    alpha = np.zeros(crop.shape[:2], np.float32)
    disc = np.zeros(crop.shape[:2], bool)
    filled = crop.copy()
    for cx, cy, _, r in iris:
        dist = np.hypot(xx - (cx - x0), yy - (cy - y0))
        alpha = np.maximum(alpha, np.clip(r + 0.5 - dist, 0, 1))
        inside = dist <= r + 0.5
        disc |= inside
        visible = inside & (opening > 0)
        colour = crop[visible].mean(0) if visible.any() else crop[inside].mean(0)
        filled[inside & (opening == 0)] = colour.astype(np.uint8)
    grow = np.ones((3, 3), np.uint8)
    hole = (cv2.dilate(disc.astype(np.uint8), grow) > 0) & (cv2.dilate(opening, grow) > 0)
    sclera = np.asarray(cv2.inpaint(crop, hole.astype(np.uint8), 3, cv2.INPAINT_TELEA), np.uint8)
    irises = np.dstack([filled, (alpha * 255 + 0.5).astype(np.uint8)]).astype(np.uint8)
    return (int(x0), int(y0), int(x1), int(y1)), sclera, irises


def background(rgb: npt.NDArray[Any], mask: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """The frame with the person inpainted away (at half size: it sits behind the rig)."""
    h, w = mask.shape
    small = cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    hole = cv2.resize((mask > 0.05).astype(np.uint8), (w // 2, h // 2))
    hole = cv2.dilate(hole, np.ones((7, 7), np.uint8))
    filled = cv2.inpaint(small, hole, 5, cv2.INPAINT_TELEA)
    return np.asarray(cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)


# -- building -----------------------------------------------------------------------------


def build(ingest_dir: Path | str, out: Path | str) -> Rig:
    """Build the rig of an ingested footage dir into ``out`` (written atomically last)."""
    began = time.perf_counter()
    work, folder = Path(ingest_dir), Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    manifest, arrays = ingest.load(work)
    points, found = arrays["points"], arrays["found"].astype(bool)
    neutral, face = _neutral(work, points, found)
    rgb = _frame(work, neutral)
    teeth = choose_teeth(points, found)
    iod = float(lm.inter_ocular(face[:, :2]))
    mask = person_mask(rgb)
    relief_xyz, relief_a, relief_tris = relief(mask, face[:468], iod)
    chin_y = float(face[152, 1])
    arrays_out = {
        "face": face[:468].astype(np.float32),
        "face_alpha": face_alpha(face[:468]),
        "relief": relief_xyz,
        "relief_alpha": relief_a,
        "relief_triangles": relief_tris,
        "teeth_uv": points[teeth][list(mesh.INNER_LIPS)].astype(np.float32),
        "face_deform": deform_weights(face[:468], face, iod, np.arange(468)),
        "relief_deform": deform_weights(relief_xyz, face, iod),
        "face_head": head_weights(face[:468], chin_y, iod),
        "relief_head": head_weights(relief_xyz, chin_y, iod),
        "neutral_shape": arrays["shapes"][neutral].astype(np.float32),
        "neutral_transform": arrays["transforms"][neutral].astype(np.float32),
    }
    arrays_out["blink"], arrays_out["gaze"] = eye_tracks(points, found, neutral, face)
    arrays_out["lid_move"] = lid_moves(face)
    arrays_out["iris"] = iris_discs(face)
    eye_box, sclera, irises = eye_images(rgb, face, arrays_out["iris"])
    alpha = (np.clip((mask - 0.15) / 0.6, 0, 1) * 255 + 0.5).astype(np.uint8)
    cv2.imwrite(os.fspath(folder / "texture.png"), np.dstack([rgb[..., ::-1], alpha]))
    cv2.imwrite(os.fspath(folder / "teeth.png"), _frame(work, teeth)[..., ::-1])
    cv2.imwrite(os.fspath(folder / "background.png"), background(rgb, mask)[..., ::-1])
    cv2.imwrite(os.fspath(folder / "sclera.png"), sclera[..., ::-1])
    cv2.imwrite(os.fspath(folder / "iris.png"), irises[..., [2, 1, 0, 3]])
    np.savez_compressed(folder / "rig.npz", **arrays_out)
    info = {
        "version": VERSION,
        "size": manifest["size"],
        "neutral": neutral,
        "teeth_frame": teeth,
        "eye_box": list(eye_box),
        "build_seconds": round(time.perf_counter() - began, 2),
    }
    tmp = folder / (RIG_JSON + ".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, folder / RIG_JSON)
    return Rig.load(folder)


def _neutral(
    work: Path, points: npt.NDArray[Any], found: npt.NDArray[Any]
) -> tuple[int, npt.NDArray[np.float32]]:
    """The best neutral frame on which FaceMesh (still-image mode) finds the face."""
    for index in choose_neutral(work, points, found)[:6]:
        detected = face_points(_frame(work, index))
        if detected is not None:
            return index, detected
    raise ValueError("no closed-mouth frontal frame with a detectable face in the footage")


def load_or_build(face_dir: Path | str) -> Rig:
    """The rig of a trained face folder (``<face>/rig3d``), built there when missing
    (avatars trained before 3D looks existed) or of an older version (before the eyes)."""
    folder = Path(face_dir) / "rig3d"
    if (folder / RIG_JSON).exists():
        if json.loads((folder / RIG_JSON).read_text()).get("version") == VERSION:
            return Rig.load(folder)
    return build(face_dir, folder)
