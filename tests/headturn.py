"""SYNTHETIC head turns for tests: real frames, geometrically warped. Not real footage.

No recording of a person turning their head on cue is available offline, so the tests build
one. Each frame of a real clip (the GRID speaker) is warped to simulate a head turn:

1. FaceMesh finds the 478 landmarks (x, y, depth, in pixels);
2. the 3D landmark cloud is rotated by the wanted yaw about a vertical axis through the
   face's centre (the cloud's mean x and mean depth), then projected orthographically back
   onto the image (the depth is dropped);
3. the image is warped piecewise-affinely, triangle by triangle, from the original landmark
   positions to the rotated ones. The face uses FaceMesh's own surface triangles (so the
   side turning toward the camera unfolds without tearing); the eyes and mouth, holes in
   that mesh, are filled from a triangulation of their rims. A band around the face (the
   outline pushed outward, at the outline's depth) turns with it, dragging hair and ears
   along; fixed anchor points on a wider ellipse and on the image border keep the
   background in place, and the triangles between the band and those anchors stretch or
   squeeze. Triangles are drawn back to front (by rotated depth), so parts of the face
   that turn away are covered by the parts in front of them.

What it does not simulate: the side of the head coming into view (it has no pixels in the
source: a thin strip at the face's edge is stretched over it), hair and ears turning in 3D,
perspective, lighting. FaceMesh reads back about 80% of the requested yaw (a requested 30
degrees reads 23-25). The yaw sign follows ``pipeline.head_pose``: positive = the nose
moves toward the image's right (the person's own left). Timing and audio of the source
clip are kept unchanged.
"""

from __future__ import annotations

import collections
import functools
import math
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay

from compliance import media
from pipeline.face import landmarks

# FaceMesh's face outline (mediapipe FACEMESH_FACE_OVAL), in order around the face
OVAL = (
    10,
    109,
    67,
    103,
    54,
    21,
    162,
    127,
    234,
    93,
    132,
    58,
    172,
    136,
    150,
    149,
    176,
    148,
    152,
    377,
    400,
    378,
    379,
    365,
    397,
    288,
    361,
    323,
    454,
    356,
    389,
    251,
    284,
    332,
    297,
    338,
)
MESH = 478  # FaceMesh points (468 on the surface, then 10 on the irises)
BAND_SCALE = 1.25  # the band that turns with the face: the outline scaled from its centre
RING = 24  # fixed anchor points on an ellipse around the face
RING_SCALE = 2.0  # that ellipse's radii, in half the face's width and height
BORDER = 5  # anchor points along each image edge, corners included
RAMP = 1 / 3  # fraction of a turn's interval spent turning (then as long returning)


@functools.cache
def surface() -> tuple[np.ndarray, frozenset[int]]:
    """FaceMesh's surface triangles (the 3-cycles of FACEMESH_TESSELATION's edges) and the
    points on the rims of its holes (the eyes and the mouth), outline excluded."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    neighbours: dict[int, set[int]] = collections.defaultdict(set)
    for a, b in FACEMESH_TESSELATION:
        neighbours[a].add(b)
        neighbours[b].add(a)
    triangles = sorted(
        {
            tuple(sorted((a, b, c)))
            for a, b in FACEMESH_TESSELATION
            for c in neighbours[a] & neighbours[b]
        }
    )
    uses = collections.Counter(edge for a, b, c in triangles for edge in ((a, b), (a, c), (b, c)))
    rims = {i for edge, n in uses.items() if n == 1 for i in edge} - set(OVAL)
    return np.array(triangles, np.int64), frozenset(rims)


def anchors(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fixed points: the image border and an ellipse around the face, (n, 2)."""
    w, h = size
    edge = np.linspace(0.0, 1.0, BORDER)
    border = np.concatenate(
        [np.stack([edge * (w - 1), np.full(BORDER, y)], 1) for y in (0.0, h - 1.0)]
        + [np.stack([np.full(BORDER - 2, x), edge[1:-1] * (h - 1)], 1) for x in (0.0, w - 1.0)]
    )
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    centre, radii = (lo + hi) / 2, (hi - lo) / 2 * RING_SCALE
    angle = np.linspace(0, 2 * np.pi, RING, endpoint=False)
    ring = centre + radii * np.stack([np.cos(angle), np.sin(angle)], 1)
    ring = np.clip(ring, 1.0, [w - 2.0, h - 2.0])
    return np.concatenate([border, ring]).astype(np.float64)


def with_band(points: np.ndarray) -> np.ndarray:
    """The landmarks followed by the band around the face: (MESH + len(OVAL), 3)."""
    oval = points[list(OVAL)].astype(np.float64)
    centre = points[:, :2].mean(0)
    band = oval.copy()
    band[:, :2] = centre + (oval[:, :2] - centre) * BAND_SCALE
    return np.concatenate([points.astype(np.float64), band])


def rotate(
    points: np.ndarray, yaw_deg: float, axis: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Points turned by ``yaw_deg`` about the vertical axis at ``axis`` (x, depth): (projected
    x, y (n, 2), depth (n,)). Positive yaw moves points in front of the axis toward larger x
    (the nose toward the image's right)."""
    pts = points.astype(np.float64)
    theta = math.radians(yaw_deg)
    cx, cz = axis
    dx, dz = pts[:, 0] - cx, pts[:, 2] - cz
    x = cx + dx * math.cos(theta) - dz * math.sin(theta)
    z = cz + dx * math.sin(theta) + dz * math.cos(theta)
    return np.stack([x, pts[:, 1]], 1), z


def layers(src: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Triangles (k, 3) over ``src`` = face points, band, anchors, in drawing order.

    Back to front: the background (between the band and the anchors), the band, then,
    each sorted far to near by turned depth, fills for the holes of the mesh (eyes, mouth:
    whatever shows through them) and the face's surface triangles.
    """
    band = MESH + np.arange(len(OVAL))
    nxt = np.roll(band, -1)
    oval, oval_next = np.array(OVAL), np.roll(np.array(OVAL), -1)
    strip = np.concatenate(
        [np.stack([oval, oval_next, band], 1), np.stack([oval_next, nxt, band], 1)]
    )
    outer = Delaunay(src[MESH:]).simplices + MESH
    outer = outer[(outer >= MESH + len(OVAL)).any(1)]  # not inside the band
    triangles, rims = surface()
    holes = Delaunay(src[: triangles.max() + 1]).simplices
    holes = holes[np.isin(holes, list(rims)).all(1)]

    def far_first(tri: np.ndarray) -> np.ndarray:
        return tri[np.argsort(-depth[tri].mean(1), kind="stable")]

    return np.concatenate([outer, strip, far_first(holes), far_first(triangles)])


def affines(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """(n, 2, 3) affine maps taking each destination triangle (n, 3, 2) onto its source."""
    ones = np.ones(dst.shape[:2] + (1,))
    d = np.concatenate([dst, ones], 2).transpose(0, 2, 1)  # (n, 3, 3): columns = vertices
    s = src.transpose(0, 2, 1)  # (n, 2, 3)
    det = np.linalg.det(d)
    ok = np.abs(det) > 1e-6
    maps = np.zeros((len(dst), 2, 3))
    maps[ok] = s[ok] @ np.linalg.inv(d[ok])
    shift = src.mean(1) - dst.mean(1)  # collapsed triangles: shift by their centroids
    maps[~ok] = np.concatenate([np.eye(2)[None].repeat((~ok).sum(), 0), shift[~ok, :, None]], 2)
    return maps


def warp_to(rgb: np.ndarray, points: np.ndarray, yaw_deg: float) -> np.ndarray:
    """``rgb`` with the face of ``points`` (its FaceMesh landmarks) turned by ``yaw_deg``."""
    h, w = rgb.shape[:2]
    axis = (float(points[:, 0].mean()), float(points[:, 2].mean()))  # the face's centre
    points = with_band(points)
    fixed = anchors(points, (w, h))
    moved, depth = rotate(points, yaw_deg, axis)
    src = np.concatenate([points[:, :2], fixed])
    dst = np.concatenate([moved, fixed])
    tri = layers(src, np.concatenate([depth, np.zeros(len(fixed))]))
    index = np.full((h, w), -1, np.int32)  # which triangle each output pixel shows
    for k, corners in enumerate(np.round(dst[tri] * 16).astype(np.int32)):
        cv2.fillConvexPoly(index, corners, k, lineType=cv2.LINE_8, shift=4)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    m = affines(dst[tri], src[tri]).astype(np.float32)[np.maximum(index, 0)]
    map_x = m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]
    map_y = m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]
    map_x[index < 0], map_y[index < 0] = xs[index < 0], ys[index < 0]
    return cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def turn_frame(rgb: np.ndarray, yaw_deg: float) -> np.ndarray:
    """One RGB frame with the head turned by ``yaw_deg`` (raises ValueError without a face)."""
    points = next(landmarks.detect([rgb], video=False))
    if points is None:
        raise ValueError("no face in the frame")
    return warp_to(rgb, points, yaw_deg)


def yaw_at(t: float, turns: Iterable[tuple[float, float, float]]) -> float:
    """The wanted yaw at ``t`` s: each (start, end, peak) turns with a raised-cosine ramp over
    the first third of its interval, holds the peak for the middle third, and comes back
    over the last third; 0 outside every interval."""
    for start, end, peak in turns:
        if start <= t <= end:
            u = (t - start) / (end - start)
            edge = min(u, 1.0 - u) / RAMP
            return peak * (0.5 - 0.5 * math.cos(math.pi * min(edge, 1.0)))
    return 0.0


def _with_landmarks(frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Each frame with its tracked FaceMesh landmarks (one clip, in order)."""
    current: list[np.ndarray] = []

    def feed() -> Iterator[np.ndarray]:
        for frame in frames:
            current[:] = [frame]
            yield frame

    for points in landmarks.detect(feed(), video=True):
        yield current[0], points


def head_turn_clip(src: Path, out: Path, turns: list[tuple[float, float, float]]) -> None:
    """Re-encode ``src`` into ``out`` (H.264 + AAC MP4) with the head turned as ``turns`` say.

    Each turn is (start_s, end_s, peak_yaw_deg); frame times are index / frame rate. Frames
    without a face are kept as they are; the audio is the source's, decoded and re-encoded.
    """
    info = media.video_facts(src)
    assert info.width and info.height and info.fps
    with tempfile.TemporaryDirectory(prefix="headturn-") as tmp:
        wav = Path(tmp) / "audio.wav"
        media.ffmpeg(["-i", str(src), "-vn", "-c:a", "pcm_s16le", str(wav)])
        writer = media.FrameWriter(out, (info.width, info.height), info.fps, wav, {})
        try:
            for index, (rgb, points) in enumerate(_with_landmarks(media.frames(src))):
                yaw = yaw_at(index / info.fps, turns)
                if points is not None and yaw != 0.0:
                    rgb = warp_to(rgb, points, yaw)
                writer.write(rgb[..., ::-1])
        finally:
            writer.close()
