"""The rig as a binary glTF (GLB): textured head and shoulders, viseme blend shapes, an
idle and a talking animation, and provenance in ``asset.extras``.

Three primitives share the coordinates (metres, Y up, the face towards +Z): the face mesh
and the relief (one RGBA texture: the neutral frame, its soft person mask as alpha, blend
mode), and the mouth cavity (the person's open-mouth frame). Blend shapes are visemes: the
footage's own mouth shapes grouped by k-means into ``VISEMES`` clusters (ordered by how
open they are), each cluster's mean move of the lips and chin carried to every vertex
by the rig's deformation weights; plus ``breath`` (the shoulders rise a little) and
``blink`` (both upper lids shut over the eyes). Weights are never negative (some engines
clamp them), unlike PCA components.

Animations: ``idle`` (breathing and two blinks, 4 s loop) and ``talk`` (the first seconds
of the footage's own mouth, projected onto the visemes by non-negative least squares,
and its own blinks), 25 fps.

The caller passes ``extras`` (content id, watermark id, AIGC label...) and may pass a
``mark`` function that embeds the invisible watermark into the texture.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy.optimize import nnls

from pipeline.face import landmarks as lm

from . import mesh
from .render import Driver
from .rig import Rig
from .scene import _grow

VISEMES = 6
FPS = 25.0
METRES_PER_IOD = 0.063  # a typical inter-ocular distance
RELIEF_RECESS = 0.15  # relief inside the face outline sits this far behind (IOD units)


def _kmeans(x: npt.NDArray[Any], k: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """Cluster centres of ``x`` (Lloyd's algorithm, k-means++-like spread start)."""
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), 1)]
    while len(centres) < k:
        d = ((x[:, None] - centres[None]) ** 2).sum(-1).min(1)
        centres = np.vstack([centres, x[rng.choice(len(x), 1, p=d / d.sum())]])
    for _ in range(30):
        label = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack(
            [x[label == j].mean(0) if (label == j).any() else centres[j] for j in range(k)]
        )
    out: npt.NDArray[np.float32] = centres.astype(np.float32)
    return out


def visemes(shapes: npt.NDArray[Any], closed: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """(VISEMES, 51, 2) canonical mouth moves from ``closed``, least open first."""
    moves = (shapes - closed[None]).reshape(len(shapes), -1)
    centres = _kmeans(moves, VISEMES).reshape(VISEMES, -1, 2)
    lips = lm.SHAPE.index(lm.LIP_LO), lm.SHAPE.index(lm.LIP_UP)
    gap = centres[:, lips[0], 1] - centres[:, lips[1], 1]
    ordered: npt.NDArray[np.float32] = centres[np.argsort(gap)]
    return ordered


class Geometry:
    """Pixel-space rig geometry turned into glTF coordinates."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        face = rig.face
        iod = float(np.linalg.norm(face[33, :2] - face[263, :2]))
        self.scale = METRES_PER_IOD / iod
        self.centre = face[:, :3].mean(0)

    def points(self, xyz: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        p = (np.asarray(xyz, np.float64) - self.centre) * self.scale
        return np.column_stack([p[:, 0], -p[:, 1], -p[:, 2]]).astype(np.float32)

    def moves(self, delta_xy: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        d = np.asarray(delta_xy, np.float64) * self.scale
        return np.column_stack([d[:, 0], -d[:, 1], np.zeros(len(d))]).astype(np.float32)


def recessed_relief(rig: Rig) -> npt.NDArray[np.float32]:
    """The relief with its vertices inside the face outline pushed back (no poking
    through the face mesh when seen from the side)."""
    oval = rig.face[list(mesh.face_oval()), :2].astype(np.float32)
    hull = cv2.convexHull(oval)
    iod = float(np.linalg.norm(rig.face[33, :2] - rig.face[263, :2]))
    out = rig.relief.copy()
    for i, (x, y, _) in enumerate(out):
        inside = cv2.pointPolygonTest(hull, (float(x), float(y)), True)
        if inside > 0:
            out[i, 2] += RELIEF_RECESS * iod * min(inside / (0.3 * iod), 1.0)
    return out


def cavity_geometry(rig: Rig, face_xyz: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    lips = face_xyz[list(mesh.INNER_LIPS)]
    xy = _grow(lips[:, :2])
    return np.column_stack([xy, np.full(len(xy), lips[:, 2].max() + 1.0)]).astype(np.float32)


def write(
    rig: Rig,
    shapes: npt.NDArray[Any],
    closed: npt.NDArray[Any],
    extras: dict[str, Any],
    mark: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None,
) -> bytes:
    """The GLB of ``rig``; ``shapes`` are the footage's canonical mouths (N, 51, 2)."""
    from .glb import Builder

    geo, driver = Geometry(rig), Driver(rig, closed)
    moves = visemes(shapes, closed)
    relief = recessed_relief(rig)
    b = Builder(extras)
    texture = rig.image("texture")
    if mark is not None:
        texture = np.dstack([mark(texture[..., :3]), texture[..., 3:]])
    skin = b.material("person", texture, blend=True)
    teeth = b.material("mouth", rig.image("teeth"), blend=False)
    size = np.array(rig.size, np.float32)
    parts = []
    for name, xyz, uv, tris, deform, mat in (
        ("face", rig.face, rig.face[:, :2] / size, rig.triangles, rig.face_deform, skin),
        ("relief", relief, rig.relief[:, :2] / size, rig.relief_triangles, rig.relief_deform, skin),
    ):
        targets = [geo.moves(deform @ (m @ driver.to_pixels.T)) for m in moves]
        targets.append(geo.moves(_breath(xyz, rig, name)))
        targets.append(geo.moves(rig.lid_move if name == "face" else np.zeros((len(xyz), 2))))
        parts.append((name, geo.points(xyz), uv, tris, targets, mat))
    base = cavity_geometry(rig, rig.face)
    targets = []
    for m in moves:
        moved = driver.pose(closed + m, np.eye(3)).face
        targets.append(geo.points(cavity_geometry(rig, moved)) - geo.points(base))
    targets += [np.zeros_like(base)] * 2
    fan = np.array([(len(base) - 1, k, (k + 1) % (len(base) - 1)) for k in range(len(base) - 1)])
    parts.append(("mouth", geo.points(base), _grow(rig.teeth_uv) / size, fan, targets, teeth))
    names = [f"viseme_{k}" for k in range(VISEMES)] + ["breath", "blink"]
    b.mesh("head_and_shoulders", parts, names)
    b.animation("idle", _idle(len(names)))
    talk = _talk(shapes - closed[None], moves, len(names))
    talk[:, -1] = rig.blink[: len(talk)]
    b.animation("talk", talk)
    return b.glb()


def _breath(xyz: npt.NDArray[Any], rig: Rig, name: str) -> npt.NDArray[np.float32]:
    """Pixel move of the breathing target: the shoulders (not the head) rise."""
    head = rig.face_head if name == "face" else rig.relief_head
    iod = float(np.linalg.norm(rig.face[33, :2] - rig.face[263, :2]))
    move = np.zeros((len(xyz), 2), np.float32)
    move[:, 1] = -0.06 * iod * (1 - head)
    return move


IDLE_BLINKS = (1.2, 3.1)  # seconds into the idle loop
BLINK_CURVE = (0.5, 1.0, 1.0, 0.6, 0.25)  # one blink, frame by frame (shuts fast, opens slower)


def _idle(n: int) -> npt.NDArray[np.float32]:
    """(T, n) weights: 4 s of slow breathing and two blinks, the mouth closed (``breath``
    and ``blink`` are the last two targets)."""
    t = np.arange(int(4 * FPS)) / FPS
    weights = np.zeros((len(t), n), np.float32)
    weights[:, -2] = 0.5 - 0.5 * np.cos(2 * np.pi * t / 4.0)
    for at in IDLE_BLINKS:
        start = round(at * FPS)
        weights[start : start + len(BLINK_CURVE), -1] = BLINK_CURVE
    return weights


def _talk(moves: npt.NDArray[Any], visemes_: npt.NDArray[Any], n: int) -> npt.NDArray[np.float32]:
    """(T, n) weights: the footage's first 4 s of mouth moves as non-negative viseme mixes."""
    basis = visemes_.reshape(len(visemes_), -1).T
    frames = moves[: int(4 * FPS)].reshape(-1, basis.shape[0])
    weights = np.zeros((len(frames), n), np.float32)
    for i, move in enumerate(frames):
        weights[i, : len(visemes_)] = np.clip(nnls(basis, move)[0], 0, 1)
    return weights


def png(rgb: npt.NDArray[Any]) -> bytes:
    order = [2, 1, 0, 3][: rgb.shape[2]]
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., order]))
    if not ok:
        raise RuntimeError("cannot encode a texture as PNG")
    return io.BytesIO(data.tobytes()).getvalue()
