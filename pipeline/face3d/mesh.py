"""FaceMesh topology: the tesselation's triangles, its holes, and the smooth normals.

``FACEMESH_TESSELATION`` lists edges, not triangles. Every triple of mutually connected
points is a candidate (854); two of them are false (each of their three edges is shared by
three candidates: they span a quad's diagonal pair), which leaves the 852 real triangles.
The mesh has four holes: the face outline, the mouth and the two eyes.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import numpy.typing as npt

TRIANGLES = 852
# the inner lip contour, clockwise in the image from the left corner (the mouth's hole)
INNER_LIPS = (
    78,
    191,
    80,
    81,
    82,
    13,
    312,
    311,
    310,
    415,
    308,
    324,
    318,
    402,
    317,
    14,
    87,
    178,
    88,
    95,
)
UPPER_INNER = frozenset((191, 80, 81, 82, 13, 312, 311, 310, 415))


@functools.cache
def _edges() -> frozenset[tuple[int, int]]:
    import mediapipe as mp

    pairs = mp.solutions.face_mesh_connections.FACEMESH_TESSELATION
    return frozenset((min(a, b), max(a, b)) for a, b in pairs)


@functools.cache
def face_oval() -> tuple[int, ...]:
    """The points of the face outline (the mesh's outer boundary)."""
    import mediapipe as mp

    return tuple(sorted({a for a, _ in mp.solutions.face_mesh_connections.FACEMESH_FACE_OVAL}))


@functools.cache
def triangles() -> npt.NDArray[np.int32]:
    """(852, 3) triangles of the FaceMesh tesselation, from its edge list."""
    edges = _edges()
    neighbours: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    found = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    shared = Counter(e for t in found for e in itertools.combinations(t, 2))
    real = sorted(t for t in found if not all(shared[e] == 3 for e in itertools.combinations(t, 2)))
    if len(real) != TRIANGLES:
        raise RuntimeError(f"FaceMesh tesselation gave {len(real)} triangles, not {TRIANGLES}")
    return np.array(real, np.int32)


def vertex_normals(vertices: npt.NDArray[Any], faces: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Smooth per-vertex normals (area-weighted), oriented towards the camera (-z)."""
    v = vertices[faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    n *= np.where(n[:, 2:3] > 0, -1.0, 1.0)  # every face towards the viewer
    out = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(out, faces[:, k], n)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return out.astype(np.float32)


def grid_mesh(
    mask: npt.NDArray[Any], step: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """Vertices (x, y) every ``step`` pixels where ``mask`` holds, and the grid's triangles
    whose corners all hold."""
    h, w = mask.shape
    xs, ys = np.arange(0, w + step - 1, step), np.arange(0, h + step - 1, step)
    xs, ys = np.minimum(xs, w - 1), np.minimum(ys, h - 1)
    gx, gy = np.meshgrid(xs, ys)
    inside = mask[gy, gx]
    index = np.full(inside.shape, -1, np.int64)
    index[inside] = np.arange(int(inside.sum()))
    a, b = index[:-1, :-1], index[:-1, 1:]
    c, d = index[1:, :-1], index[1:, 1:]
    quads = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
    tris = np.concatenate(
        [np.stack([a[quads], b[quads], d[quads]], 1), np.stack([a[quads], d[quads], c[quads]], 1)]
    )
    points = np.stack([gx[inside], gy[inside]], 1).astype(np.float32)
    return points, tris.astype(np.int32)
