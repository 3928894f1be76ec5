"""Is an upload good training footage? Specific, user-facing problems (code, message).

Checks, in order: readable video with sound, length, frame rate, resolution, then on a
sample of frames: exactly one face, its size, how far the head turns, light and sharpness,
and finally whether the sound track is more than silence. Several clips may be joined
first with ``join_clips``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from compliance import media

from . import landmarks as lm


class Problem(NamedTuple):
    code: str
    message: str


@dataclass(frozen=True)
class Limits:
    min_seconds: float = 60.0  # shorter footage cannot train a mouth model
    recommended_seconds: float = 180.0
    min_fps: float = 24.0
    max_fps: float = 61.0
    min_short_side: int = 256  # pixels
    min_face_px: float = 48.0  # inter-ocular distance (outer eye corners)
    max_yaw_deg: float = 30.0  # head turned left/right
    max_pitch_deg: float = 25.0  # head tilted up/down
    turned_fraction: float = 0.2  # share of sampled frames allowed beyond those angles
    face_fraction: float = 0.8  # share of sampled frames that must show the face
    several_fraction: float = 0.2  # share of sampled frames with a second face that rejects
    min_luma: float = 60.0  # mean brightness of the face (0-255)
    max_luma: float = 215.0
    min_sharpness: float = 20.0  # Laplacian variance of the face at 128 px width
    min_audio_dbfs: float = -45.0  # loudest second of the sound track
    samples: int = 60  # frames analysed, chosen evenly by time
    analysis_side: int = 640  # analysed frames are scaled to at most this (longer side)


def join_clips(clips: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> None:
    """Join several recordings into one training video (video + sound)."""
    media.concat(clips, out)


def training_video_problems(
    path: str | os.PathLike[str],
    limits: Limits | None = None,
    media_limits: media.MediaLimits | None = None,
) -> list[Problem]:
    """Everything that stops ``path`` from being training footage (empty when it is fine).

    The file is probed within ``media_limits`` before anything is decoded (over one:
    a ``media_limit`` problem naming it); then ``samples`` frames chosen by time, scaled
    down, are analysed: memory holds those small frames, never the clip."""
    lim = limits or Limits()
    try:
        info = media.probe(path, media_limits)
    except media.MediaLimitExceeded as exc:
        return [Problem("media_limit", exc.message)]
    except media.MediaError as exc:
        return [Problem("unreadable", f"We could not read this file: {exc}. Upload an MP4 or MOV.")]
    problems = _container_problems(info, lim)
    if not info.has_video:
        return problems
    frames = _sample_frames(path, info, lim, media_limits)
    scale = max(info.width or 1, info.height or 1) / max(
        max(frames[0].shape[:2]) if frames else 1, 1
    )
    problems += _face_problems(frames, lim, scale)
    if info.has_audio:
        problems += _audio_problems(path, lim, info.duration_s)
    return problems


def _container_problems(info: media.MediaInfo, lim: Limits) -> list[Problem]:
    out = []
    if not info.has_video:
        out.append(Problem("no_video", "The file has no picture. Upload a video recording."))
    if not info.has_audio:
        out.append(
            Problem(
                "no_audio",
                "The video has no sound. Record with the microphone on, "
                "speaking naturally: the mouth is learned from your voice.",
            )
        )
    if info.duration_s < lim.min_seconds:
        out.append(
            Problem(
                "too_short",
                f"The video is {info.duration_s:.0f} s long; at least "
                f"{lim.min_seconds:.0f} s of you speaking is needed "
                f"({lim.recommended_seconds / 60:.0f} minutes recommended).",
            )
        )
    if info.has_video and not lim.min_fps <= (info.fps or 0) <= lim.max_fps:
        out.append(
            Problem(
                "frame_rate",
                f"The video runs at {info.fps or 0:.0f} frames per second; "
                "record at 25, 30 or 60 frames per second.",
            )
        )
    if info.has_video and min(info.width or 0, info.height or 0) < lim.min_short_side:
        out.append(
            Problem(
                "resolution",
                f"The video is only {info.width}x{info.height} pixels; record in 720p or better.",
            )
        )
    return out


def _sample_frames(
    path: str | os.PathLike[str],
    info: media.MediaInfo,
    lim: Limits,
    media_limits: media.MediaLimits | None,
) -> list[npt.NDArray[Any]]:
    return media.sample_frames(path, info, lim.samples, media_limits, max_side=lim.analysis_side)


def _face_counts(frames: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    import mediapipe as mp

    counts = []
    with mp.solutions.face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=0.6
    ) as detector:
        for rgb in frames:
            found = detector.process(np.ascontiguousarray(rgb)).detections or []
            counts.append(len(found))
    return np.array(counts)


def _face_problems(
    frames: list[npt.NDArray[Any]], lim: Limits, scale: float = 1.0
) -> list[Problem]:
    """``scale``: pixels of the original video per pixel of the analysed frames."""
    if not frames:
        return [Problem("no_face", "We found no frames to analyse in this video.")]
    counts = _face_counts(frames)
    if np.mean(counts >= 2) > lim.several_fraction:
        return [
            Problem(
                "several_faces",
                "More than one face is visible. Record alone, with no "
                "other people, photos or screens showing faces in the picture.",
            )
        ]
    faces = [
        (rgb, p)
        for rgb, p, n in zip(frames, lm.detect(frames, video=False), counts, strict=True)
        if n and p is not None
    ]
    if len(faces) < lim.face_fraction * len(frames):
        share = 100 * len(faces) / len(frames)
        return [
            Problem(
                "no_face",
                f"Your face is visible in only {share:.0f}% of the video. Face "
                "the camera, fully in the picture, for the whole recording.",
            )
        ]
    meshes = [p for _, p in faces]
    return (
        _size_problems(meshes, lim, scale)
        + _pose_problems(meshes, lim)
        + _light_problems(faces, lim)
    )


def _size_problems(
    meshes: list[npt.NDArray[Any]], lim: Limits, scale: float = 1.0
) -> list[Problem]:
    iod = scale * float(np.median([lm.inter_ocular(p[:, :2]) for p in meshes]))
    if iod >= lim.min_face_px:
        return []
    return [
        Problem(
            "face_too_small",
            f"Your face is too small in the picture ({iod:.0f} px between "
            f"the eyes; at least {lim.min_face_px:.0f} px needed). Sit closer to the camera "
            "or record at a higher resolution.",
        )
    ]


def head_angles(points: npt.NDArray[Any]) -> tuple[float, float]:
    """(yaw, pitch) in degrees from FaceMesh's 3D points (eye corners; forehead to chin)."""
    eyes = points[lm.EYE_L] - points[lm.EYE_R]
    axis = points[152] - points[10]
    yaw = np.degrees(np.arctan2(eyes[2], eyes[0]))
    pitch = np.degrees(np.arctan2(axis[2], axis[1]))
    return float(yaw), float(pitch)


def _pose_problems(meshes: list[npt.NDArray[Any]], lim: Limits) -> list[Problem]:
    angles = np.array([head_angles(p) for p in meshes])
    turned = (np.abs(angles[:, 0]) > lim.max_yaw_deg) | (np.abs(angles[:, 1]) > lim.max_pitch_deg)
    if turned.mean() <= lim.turned_fraction:
        return []
    return [
        Problem(
            "head_pose",
            "Your head is turned away from the camera in "
            f"{100 * turned.mean():.0f}% of the video. Look roughly at the camera "
            f"(within about {lim.max_yaw_deg:.0f} degrees); small natural movements are fine.",
        )
    ]


def _face_patch(rgb: npt.NDArray[Any], points: npt.NDArray[Any]) -> npt.NDArray[Any]:
    x0, y0 = np.maximum(points[:, :2].min(0).astype(int), 0)
    x1, y1 = points[:, :2].max(0).astype(int)
    gray = cv2.cvtColor(rgb[y0 : y1 + 1, x0 : x1 + 1], cv2.COLOR_RGB2GRAY)
    width = 128
    return cv2.resize(gray, (width, max(8, round(gray.shape[0] * width / max(gray.shape[1], 1)))))


def _light_problems(
    faces: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]], lim: Limits
) -> list[Problem]:
    patches = [_face_patch(rgb, p) for rgb, p in faces]
    luma = float(np.median([p.mean() for p in patches]))
    sharp = float(np.median([cv2.Laplacian(p, cv2.CV_64F).var() for p in patches]))
    out = []
    if luma < lim.min_luma:
        out.append(
            Problem(
                "too_dark",
                "Your face is too dark. Record facing a window or a "
                "lamp, with the light in front of you, not behind.",
            )
        )
    if luma > lim.max_luma:
        out.append(
            Problem(
                "too_bright",
                "Your face is overexposed. Move away from direct light or lower the exposure.",
            )
        )
    if sharp < lim.min_sharpness:
        out.append(
            Problem(
                "blurry",
                "The picture of your face is blurry. Clean the lens, "
                "focus on your face and keep the camera still.",
            )
        )
    return out


def _audio_problems(path: str | os.PathLike[str], lim: Limits, seconds: float) -> list[Problem]:
    rate = 16000
    samples = media.audio(path, rate, max_seconds=seconds + 1.0)
    if len(samples) >= rate:
        per_second = samples[: len(samples) // rate * rate].reshape(-1, rate)
        power = np.mean(per_second.astype(np.float64) ** 2, 1)
        loudest = float(10 * np.log10(np.max(power) + 1e-12))
    else:
        loudest = -120.0
    if loudest >= lim.min_audio_dbfs:
        return []
    return [
        Problem(
            "silent_audio",
            "The sound track is silent. Check that the microphone is on "
            "and speak naturally while recording.",
        )
    ]
