"""Audio in -> frames of a 3D look out, driven like the 2D avatar.

The same audio-to-mouth model as the 2D renderer predicts the lips and chin per frame
(smoothed, closed in silence: ``pipeline.face.render.predict_shapes``); their move away
from the model's closed mouth, in the neutral frame's pixels, drags the rig's lower-face
and jaw vertices (``Rig.face_deform``, ``Rig.relief_deform``). The head follows the
footage's template loop (``template_indices``, as in 2D): each template frame's motion
relative to its clip's median pose, limited to what the relief holds (``MAX_TURN``,
``MAX_SHIFT``), moves the head and neck; the shoulders stay. The same template frames
give the eyes: the lids close where the person blinked in the footage
(``Rig.blink``, ``Rig.lid_move``) and the irises move as theirs did (``Rig.gaze``).

``iter_frames`` yields RGB frames at the footage's size (so the 2D compositor frames,
re-backgrounds and tones them unchanged); ``render_video`` goes through
``pipeline.face.render.render_video``: the same compositing, encoding and
``compliance.stamp()``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from compliance.progress import Progress
from compliance.stamping import ComplianceSettings, ContentSpec, StampRecord
from pipeline.face import landmarks as lm
from pipeline.face import render as face_render
from pipeline.face.composite import CompositeOptions
from pipeline.face.render import FaceRig, Timer

from .rig import Rig
from .scene import Pose, Scene

MAX_TURN = math.radians(8.0)  # in-plane head roll kept within this
MAX_SHIFT = 0.25  # head shift kept within this many inter-ocular distances
MAX_SCALE = 0.06  # head scale change kept within +-6 %


def _affine3(affine: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    return np.vstack([np.asarray(affine, np.float64), [0.0, 0.0, 1.0]])


def head_motions(
    manifest: dict[str, Any],
    arrays: dict[str, npt.NDArray[Any]],
    templates: npt.NDArray[Any],
    centre: npt.NDArray[Any],
) -> npt.NDArray[np.float32]:
    """(T, 3, 3) motion of the head per output frame, in the neutral frame's pixels.

    Each template frame's pose relative to its clip's median pose (the stabilising
    transforms of ingest), limited in turn, scale and shift about the face ``centre``."""
    transforms = arrays["transforms"]
    starts = np.array([c["start"] for c in manifest["clips"]])
    ends = np.array([c["end"] for c in manifest["clips"]])
    medians = [np.median(transforms[s:e], axis=0) for s, e in zip(starts, ends, strict=True)]
    iod = float(np.median(lm.inter_ocular(arrays["points"])))
    out = np.empty((len(templates), 3, 3), np.float32)
    for i, t in enumerate(templates):
        clip = int(np.searchsorted(starts, t, side="right")) - 1
        motion = np.linalg.inv(_affine3(transforms[t])) @ _affine3(medians[clip])
        out[i] = limit(motion, np.asarray(centre, np.float64), iod)
    return out


def limit(
    motion: npt.NDArray[Any], centre: npt.NDArray[Any], iod: float
) -> npt.NDArray[np.float32]:
    """The similarity ``motion`` with its turn, scale and shift (of ``centre``) clipped."""
    a, b = motion[0, 0], motion[1, 0]
    scale = float(np.clip(math.hypot(a, b), 1 - MAX_SCALE, 1 + MAX_SCALE))
    turn = float(np.clip(math.atan2(b, a), -MAX_TURN, MAX_TURN))
    shift = motion[:2, :2] @ centre + motion[:2, 2] - centre
    shift = np.clip(shift, -MAX_SHIFT * iod, MAX_SHIFT * iod)
    c, s = scale * math.cos(turn), scale * math.sin(turn)
    linear = np.array([[c, -s], [s, c]])
    out = np.eye(3)
    out[:2, :2] = linear
    out[:2, 2] = centre + shift - linear @ centre
    return out.astype(np.float32)


class Driver:
    """Turns mouth shapes and head motions into poses of one rig.

    ``closed`` is the canonical lips + chin (51 x 2) that shows the rig as it was filmed:
    the audio model's closed mouth, so silence is the neutral frame's own mouth."""

    def __init__(self, rig: Rig, closed: npt.NDArray[Any]) -> None:
        self.rig = rig
        self.closed = np.asarray(closed, np.float32)
        self.to_pixels = rig.pixels_from_canonical()
        self.centre = rig.face[:, :2].mean(0)

    def pose(
        self,
        shape: npt.NDArray[Any],
        motion: npt.NDArray[Any],
        yaw: float = 0.0,
        blink: float = 0.0,
        gaze: npt.NDArray[Any] | None = None,
    ) -> Pose:
        """The rig with the lips and chin at ``shape`` (canonical, 51 x 2), the lids
        ``blink`` shut (0..1) and the irises moved by ``gaze`` (neutral pixels)."""
        delta = (np.asarray(shape) - self.closed) @ self.to_pixels.T  # (51, 2) pixels
        face = self.rig.face.copy()
        face[:, :2] += self.rig.face_deform @ delta + float(blink) * self.rig.lid_move
        relief = self.rig.relief.copy()
        relief[:, :2] += self.rig.relief_deform @ delta
        iris = self.rig.iris[:, :2] + (0.0 if gaze is None else np.asarray(gaze, np.float32))
        return Pose(face, relief, motion, yaw, iris.astype(np.float32))

    def footage_pose(self, shape: npt.NDArray[Any], motion: npt.NDArray[Any], frame: int) -> Pose:
        """``pose`` with the eyes of footage frame ``frame`` (blink and gaze)."""
        return self.pose(shape, motion, blink=self.rig.blink[frame], gaze=self.rig.gaze[frame])


def iter_frames(
    rig: Rig,
    avatar: FaceRig,
    samples: npt.NDArray[Any],
    rate: int,
    look: str,
    *,
    out_size: tuple[int, int] | None = None,
    timer: Timer | None = None,
    start: int = 0,
    antialias: int | None = None,
) -> Iterator[npt.NDArray[np.uint8]]:
    """RGB frames of the rig saying ``samples`` in ``look`` (footage size by default;
    ``antialias``: multisampling samples, the look's default when None)."""
    timer = timer or Timer()
    with timer.stage("face_model"):
        n = face_render.frame_count(avatar, samples, rate)
        shapes = avatar.trained.space.decode(face_render.predict_shapes(avatar, samples, rate, n))
        trained = avatar.trained
        driver = Driver(rig, trained.space.decode(trained.neutral[None])[0])
        templates = face_render.template_indices(avatar.manifest, n, start)
        motions = head_motions(avatar.manifest, avatar.arrays, templates, driver.centre)
    with timer.stage("gl_setup"):
        scene = Scene(rig, look, out_size, samples=antialias)
    try:
        for shape, motion, template in zip(shapes, motions, templates, strict=True):
            with timer.stage("render3d"):
                frame = scene.draw(driver.footage_pose(shape, motion, int(template)))
            yield frame
    finally:
        scene.close()


def render_video(
    rig: Rig,
    avatar: FaceRig,
    samples: npt.NDArray[Any],
    rate: int,
    look: str,
    output: str | os.PathLike[str],
    content: ContentSpec,
    settings: ComplianceSettings,
    composite: CompositeOptions | None = None,
    progress: Progress | None = None,
    overlay: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] | None = None,
) -> StampRecord:
    """Render a 3D look, composite, encode and stamp it exactly as a 2D render is."""
    frames = iter_frames(rig, avatar, samples, rate, look)
    return face_render.render_video(
        avatar, samples, rate, output, content, settings, composite, progress, frames, overlay
    )
