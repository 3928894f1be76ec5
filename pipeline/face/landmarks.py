"""FaceMesh landmarks: detection per frame, canonical alignment, the metric definitions.

Coordinates are pixels (x, y). The canonical frame puts the midpoint of the outer eye
corners (points 33, 263) at the origin with x along the eyes and one unit per inter-ocular
distance; a per-frame similarity transform is fitted on points of the upper face that do
not move when the person speaks (eye corners and the nose ridge).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.bundled import load_face_mesh

# the union of mediapipe's FACEMESH_LIPS (40 points), as DESIGN.md defines LMD on them
LIPS = (
    0,
    13,
    14,
    17,
    37,
    39,
    40,
    61,
    78,
    80,
    81,
    82,
    84,
    87,
    88,
    91,
    95,
    146,
    178,
    181,
    185,
    191,
    267,
    269,
    270,
    291,
    308,
    310,
    311,
    312,
    314,
    317,
    318,
    321,
    324,
    375,
    402,
    405,
    409,
    415,
)
CHIN = (152, 148, 377, 176, 400, 175, 199, 200, 18, 136, 365)  # moves with the jaw
SHAPE = LIPS + CHIN  # what the audio model predicts
STABLE = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4)  # rigid upper face
NOSE_TIP, EYE_R, EYE_L, LIP_UP, LIP_LO = 1, 33, 263, 13, 14


def detect(
    frames: Iterable[npt.NDArray[Any]], video: bool = True
) -> Iterator[npt.NDArray[Any] | None]:
    """FaceMesh (478 points: x, y, depth in pixels) per RGB frame; None without a face.

    ``video`` uses the tracker (smoother, faster) for consecutive frames of one clip.
    """
    with load_face_mesh(static=not video) as mesh:
        for rgb in frames:
            result = mesh.process(np.ascontiguousarray(rgb))
            if not result.multi_face_landmarks:
                yield None
                continue
            h, w = rgb.shape[:2]
            points = result.multi_face_landmarks[0].landmark
            yield np.array([(p.x * w, p.y * h, p.z * w) for p in points], np.float32)


def inter_ocular(points: npt.NDArray[Any]) -> npt.NDArray[np.floating[Any]]:
    distance: npt.NDArray[np.floating[Any]] = np.linalg.norm(
        points[..., EYE_R, :] - points[..., EYE_L, :], axis=-1
    )
    return distance


def normalised_lips(points: npt.NDArray[Any]) -> npt.NDArray[np.floating[Any]]:
    """(..., 40, 2) lip points relative to the nose tip, in inter-ocular units (DESIGN.md)."""
    rel = points[..., LIPS, :] - points[..., NOSE_TIP : NOSE_TIP + 1, :]
    lips: npt.NDArray[np.floating[Any]] = rel / inter_ocular(points)[..., None, None]
    return lips


def opening(points: npt.NDArray[Any]) -> npt.NDArray[np.floating[Any]]:
    """Inner-lip gap (point 14 minus point 13) in inter-ocular units."""
    gap = np.linalg.norm(points[..., LIP_LO, :] - points[..., LIP_UP, :], axis=-1)
    relative: npt.NDArray[np.floating[Any]] = gap / inter_ocular(points)
    return relative


def umeyama(src: npt.NDArray[Any], dst: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """2x3 similarity (rotation, uniform scale, shift) mapping src points onto dst."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / (s**2).sum(1).mean()
    affine = np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])
    return affine.astype(np.float32)


def eye_frame(points: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """2x3 similarity taking pixels to canonical units by the outer eye corners alone."""
    a, b = points[EYE_R], points[EYE_L]
    return umeyama(np.stack([a, b]), np.array([[-0.5, 0.0], [0.5, 0.0]], np.float32))


def reference_stable(all_points: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Canonical positions of STABLE: their mean over frames in the eye frame."""
    canon = [apply(eye_frame(p), p[list(STABLE)]) for p in all_points]
    mean: npt.NDArray[np.floating[Any]] = np.mean(canon, axis=0)
    return mean.astype(np.float32)


def to_canonical(points: npt.NDArray[Any], reference: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """2x3 similarity taking this frame's pixels to canonical units (fitted on STABLE)."""
    return umeyama(points[list(STABLE)], reference)


def apply(affine: npt.NDArray[Any], points: npt.NDArray[Any]) -> npt.NDArray[np.floating[Any]]:
    moved: npt.NDArray[np.floating[Any]] = points @ affine[:, :2].T + affine[:, 2]
    return moved


def fill_missing(
    tracks: list[npt.NDArray[Any] | None],
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Fill frames without a face from the nearest detected one: (points, found mask)."""
    found = np.array([p is not None for p in tracks])
    if not found.any():
        raise ValueError("no face was found in any frame")
    idx = np.flatnonzero(found)
    nearest = idx[np.abs(np.arange(len(tracks))[:, None] - idx[None]).argmin(1)]
    return np.stack([tracks[i] for i in nearest]), found
