"""Head yaw from FaceMesh landmarks, sampled from a video by time, and head-turn events.

Building blocks of the timed liveness challenge: at server-chosen moments the consent page
asks the person to turn their head to their own left or right, and the server checks from
these events that the turn happened near its cue.

Sign convention, in the IMAGE AS CAPTURED (unmirrored camera frames, as MediaRecorder
stores them even when the page shows a mirrored preview):

- yaw 0: the face looks straight into the camera;
- yaw > 0: the nose points toward the image's RIGHT (larger x), which is the person's own
  LEFT (a camera faces the person, so their left side appears on the image's right);
- yaw < 0: the nose points toward the image's left, the person's own right.

``IMAGE_TO_PERSON`` holds that mapping; ``turn_events`` reports directions in the person's
own terms ("left" = the person's left), as the page words its prompt ("turn your head to
YOUR left"). A recording that was mirrored before upload would flip every direction.

Yaw is absolute (from the camera's axis), but a person at rest rarely reads 0: cameras sit
off-axis and FaceMesh has a bias of a degree or two. The GRID speaker at rest reads +6
degrees (up to +11), so ``turn_events`` measures turns from the person's own resting yaw.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from pipeline.face import landmarks

# Where the nose points in the captured image -> the side it is for the person themself.
IMAGE_TO_PERSON = {"image_right": "left", "image_left": "right"}

# Recommended challenge settings (measured on the GRID speaker; see turn_events):
# - a turn is 15 degrees or more away from the person's own resting yaw: resting frames stay
#   within about 6 degrees of it (so well inside the frontal band of 7.5), while a simulated
#   30-degree turn reads 23-25 degrees (FaceMesh sees about 80% of a turn);
# - the turn must be reached 0.25 to 2.5 s after the cue is shown: earlier is faster than a
#   human reaction (a guess or a replay), later allows a slow reader, the head's travel to
#   15 degrees, 10 fps sampling and the page's timestamps.
TURN_THRESHOLD_DEG = 15.0
TURN_LATENCY_S = (0.25, 2.5)

# Left-right pairs of rigid upper-face points (person's right, person's left): outer and
# inner eye corners, upper cheeks, nose wings. The person's right side is on the image left.
SYMMETRIC_PAIRS = ((33, 263), (133, 362), (116, 345), (123, 352), (129, 358), (98, 327))
# Rigid points on the face's midline: the nose ridge from between the eyes to the tip.
MIDLINE = (168, 6, 197, 195, 5, 4)


def symmetry_normal(points: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Unit normal of the face's plane of bilateral symmetry (from its right to its left).

    Least-squares fit: reflecting each pair's left point in the plane should land on its
    right point, and every midline point (and pair midpoint) should lie in the plane. The
    squared residuals sum to ``n' M n`` with M below, so n is M's smallest eigenvector.
    """
    pts = np.asarray(points, np.float64)
    right = pts[[r for r, _ in SYMMETRIC_PAIRS]]
    left = pts[[lf for _, lf in SYMMETRIC_PAIRS]]
    diffs = left - right
    mids = np.vstack([(left + right) / 2.0, pts[list(MIDLINE)]])
    mids -= mids.mean(0)
    m = (diffs**2).sum() * np.eye(3) - diffs.T @ diffs + 4.0 * mids.T @ mids
    normal = np.linalg.eigh(m)[1][:, 0]
    return normal if normal @ diffs.sum(0) > 0 else -normal


def yaw_degrees(points: npt.NDArray[Any]) -> float:
    """Head yaw in degrees from one FaceMesh array ((478, 3): x, y, depth in pixels).

    Positive: the nose points toward the image's right, the person's own left (see the
    module docstring). The angle is that of the symmetry plane's normal in the x-depth
    plane (FaceMesh depth grows away from the camera); head roll and pitch change it only
    by about their product (in radians).
    """
    normal = symmetry_normal(points)
    return math.degrees(math.atan2(normal[2], normal[0]))


def yaw_track(rgb_frames: Iterable[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """Yaw in degrees of each RGB frame of one clip (NaN where no face was found)."""
    yaws = [
        np.nan if points is None else yaw_degrees(points)
        for points in landmarks.detect(rgb_frames, video=True)
    ]
    return np.asarray(yaws, np.float64)


def _frame_time(frame: av.VideoFrame, index: int, stream: av.video.stream.VideoStream) -> float:
    """Presentation time in seconds (from the frame's pts; by index and rate without one)."""
    if frame.time is not None:
        return float(frame.time)
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    return index / rate


def sampled_frames(
    path: str | os.PathLike[str], fps: float, max_seconds: float, times: list[float]
) -> Iterator[npt.NDArray[Any]]:
    """RGB frames sampled on a grid of ``1 / fps`` seconds; their times go into ``times``.

    Times are presentation times measured from the first decoded frame, so a recording whose
    timestamps start late still starts at 0. A frame is kept when its time reaches the next
    grid slot; decoding stops at the first frame at or past ``max_seconds``. Only the frame
    being decoded is held here: each sampled one is handed on before the next is decoded.
    """
    step = 1.0 / fps
    with av.open(os.fspath(path)) as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start: float | None = None
        due = 0.0
        for index, frame in enumerate(container.decode(stream)):
            t = _frame_time(frame, index, stream)
            start = t if start is None else start
            t -= start
            if t >= max_seconds:
                break
            if t < due - 1e-6:
                continue
            times.append(t)
            due = (math.floor(t / step + 1e-6) + 1) * step
            yield frame.to_ndarray(format="rgb24")


def sample_yaw(
    path: str | os.PathLike[str], fps: float = 10.0, max_seconds: float = 60.0
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """(times in s, yaw in degrees) of a video file's frames sampled ``fps`` times a second.

    Works on files without a duration in their header (browser WebM): sampling follows the
    frames' own timestamps, never their count, and stops at ``max_seconds``.
    """
    if fps <= 0 or max_seconds <= 0:
        raise ValueError("fps and max_seconds must be positive")
    times: list[float] = []
    yaw = yaw_track(sampled_frames(path, fps, max_seconds, times))
    return np.asarray(times, np.float64), yaw


def person_direction(yaw_deg: float) -> str:
    """The person's own side ("left" or "right") a yaw's sign points to (IMAGE_TO_PERSON)."""
    return IMAGE_TO_PERSON["image_right" if yaw_deg > 0 else "image_left"]


def turn_events(
    times: npt.NDArray[Any],
    yaw: npt.NDArray[Any],
    threshold_deg: float,
    min_frames: int = 2,
    baseline_deg: float | None = None,
) -> list[tuple[float, str]]:
    """Head turns: (time in s, "left"/"right" in the PERSON's own terms) per turn.

    Yaw is taken relative to the person's resting yaw, ``baseline_deg`` (default: the median
    of the samples with a face, right when the person faces the screen most of the time):
    cameras sit off-axis and FaceMesh has a bias of its own, so the same person at rest
    reads 5-10 degrees off zero. A turn is counted when the head, after having been roughly
    frontal (within half the threshold of the baseline), stays beyond the threshold on one
    side for ``min_frames`` consecutive samples. Its time is that of the first sample beyond
    the threshold (when the turn is reached). The head must come back to frontal before
    another turn counts; samples without a face (NaN) break a run and never count as
    frontal.
    """
    if len(times) != len(yaw):
        raise ValueError("times and yaw differ in length")
    yaw = np.asarray(yaw, np.float64)
    if not np.isfinite(yaw).any():
        return []
    rel = yaw - (np.nanmedian(yaw) if baseline_deg is None else baseline_deg)
    events: list[tuple[float, str]] = []
    armed, run_start, run_sign, run_length = False, 0, 0.0, 0
    for i, y in enumerate(rel):
        armed = armed or abs(y) < threshold_deg / 2  # NaN compares False: never frontal
        sign = float(np.sign(y)) if abs(y) >= threshold_deg else 0.0
        if not armed or sign == 0.0:
            run_length = 0
            continue
        if run_length == 0 or sign != run_sign:
            run_start, run_sign, run_length = i, sign, 0
        run_length += 1
        if run_length >= min_frames:
            events.append((float(times[run_start]), person_direction(run_sign)))
            armed, run_length = False, 0
    return events
