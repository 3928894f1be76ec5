"""Stills of the 3D looks: the frames of the closing screenshots (``dhf eval face
--screenshots``) and of the avatar's quality report.

One sheet per look, three frames side by side: the mouth closed, the person's open mouth,
and the open mouth seen from 15 degrees. The report's sheets carry the visible AI label
(``compliance.labels``) on every frame, and an identity figure: the dlib face distance
between the closed-mouth frame and frames of the person's own footage (the consent check
accepts 0.45 or less).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from compliance.consent import face_distance
from compliance.labels import Labeler
from pipeline.consent_media import face_embeddings
from pipeline.face import ingest

from .render import Driver
from .rig import Rig, _frame
from .scene import LOOKS, Pose, Scene

WIDTH = 512  # each frame's width (its height keeps the footage's shape)
TURN = math.radians(15)
REAL_FRAMES = 6  # footage frames the identity is measured against


def poses(rig: Rig, shapes: npt.NDArray[Any]) -> list[Pose]:
    """Closed, open, and open turned by ``TURN``; eyes as in the neutral frame."""
    driver = Driver(rig, shapes[rig.neutral])
    still = np.eye(3, dtype=np.float32)
    return [
        driver.pose(shapes[rig.neutral], still),
        driver.pose(shapes[rig.teeth_frame], still),
        driver.pose(shapes[rig.teeth_frame], still, yaw=TURN),
    ]


def frames(
    rig: Rig, shapes: npt.NDArray[Any], looks: tuple[str, ...] = LOOKS
) -> dict[str, list[npt.NDArray[np.uint8]]]:
    """Each look's three frames (RGB, ``WIDTH`` wide)."""
    w, h = rig.size
    out = {}
    for look in looks:
        scene = Scene(rig, look, (WIDTH, round(WIDTH * h / w)))
        try:
            out[look] = [scene.draw(p) for p in poses(rig, shapes)]
        finally:
            scene.close()
    return out


def write_sheet(path: Path, frames_rgb: list[npt.NDArray[Any]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(os.fspath(path), np.hstack(frames_rgb)[..., ::-1]):
        raise OSError(f"cannot write {path}")
    return os.fspath(path)


def report(face_dir: Path | str, out: Path | str) -> list[dict[str, Any]]:
    """The quality report's stills of a trained face folder (with ``rig3d``): one labelled
    PNG per look in ``out`` and its identity distance (None when dlib finds no face)."""
    face, folder = Path(face_dir), Path(out)
    rig = Rig.load(face / "rig3d")
    _, arrays = ingest.load(face)
    picks = np.linspace(0, len(arrays["shapes"]) - 1, REAL_FRAMES).astype(int)
    real = face_embeddings([_frame(face, int(i)) for i in picks])
    rows = []
    for look, shots in frames(rig, arrays["shapes"]).items():
        mine = face_embeddings(shots[:1])
        distance = face_distance(mine, real) if len(mine) and len(real) else None
        labeler = Labeler(shots[0].shape[1], shots[0].shape[0])
        labelled = [labeler.apply(s, 0.0) for s in shots]
        rows.append(
            {
                "look": look,
                "file": write_sheet(folder / f"face3d_{look}.png", labelled),
                "identity_distance": None if distance is None else round(distance, 3),
            }
        )
    return rows
