"""What a consent recording (or reference footage) shows: the features the consent
checks in ``compliance.consent`` decide on.

Faces: dlib ResNet identity embeddings (128-d) of frames sampled by time. Voice: a
Resemblyzer speaker embedding (256-d, unit length). Words: Whisper base with word timings
(``pipeline.asr``), so the server can tell *when* each digit of the code was said. Head
turns: FaceMesh yaw sampled at 10 frames a second (``pipeline.head_pose``). Liveness also
looks at how much the picture changes between frames (a still image barely does).

Every reader here is bounded: frames are chosen by their timestamps and decoded one at a
time, at most ``max_seconds`` of the file are read, and kept frames are scaled down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from compliance import media

from . import asr, bundled, head_pose

VOICE_RATE = 16000
MAX_SIDE = 640  # kept frames are scaled to at most this many pixels on the longer side
CONSENT_MAX_SECONDS = 90.0  # a consent statement takes 20-30 s
TURN_DEGREES = 15.0  # yaw from the resting pose a turn must reach (GRID at rest: within 6.1)


@dataclass(frozen=True)
class RecordingFeatures:
    faces: npt.NDArray[Any]  # (n, 128) dlib embeddings of the frames where one face was found
    frames_sampled: int
    voice: npt.NDArray[Any] | None  # (256,) speaker embedding, None without enough speech
    transcript: str
    digits: tuple[tuple[str, float], ...]  # every digit heard, with its start time (s)
    turns: tuple[tuple[float, str], ...]  # head turns: (start_s, "left" | "right")
    motion: float  # median mean-absolute frame difference (0-255 scale) between samples
    duration_s: float


def stream_seconds(path: str | os.PathLike[str], max_seconds: float) -> float:
    """How long the video stream runs, from packet timestamps (no decoding): a browser
    WebM carries no duration in its header. Capped at ``max_seconds``."""
    end = 0.0
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float(packet.pts * packet.time_base))
                if end >= max_seconds:
                    return max_seconds
    return end


def sample_frames(
    path: str | os.PathLike[str], count: int, max_seconds: float = 600.0
) -> list[npt.NDArray[Any]]:
    """Up to ``count`` RGB frames spread evenly in time over the first ``max_seconds``,
    decoded one at a time (never the whole clip in memory), at most MAX_SIDE pixels."""
    seconds = stream_seconds(path, max_seconds)
    wanted = list((np.arange(count) + 0.5) * seconds / count)
    kept: list[npt.NDArray[Any]] = []
    with av.open(os.fspath(path)) as container:
        for frame in container.decode(video=0):
            moment = float(frame.time or 0.0)
            if moment > max_seconds or not wanted:
                break
            if moment + 0.02 >= wanted[0]:
                while wanted and moment + 0.02 >= wanted[0]:
                    wanted.pop(0)
                kept.append(_small(frame))
    return kept


def _small(frame: av.VideoFrame) -> npt.NDArray[Any]:
    scale = min(1.0, MAX_SIDE / max(frame.width, frame.height))
    if scale < 1.0:
        frame = frame.reformat(
            width=int(frame.width * scale) // 2 * 2, height=int(frame.height * scale) // 2 * 2
        )
    return frame.to_ndarray(format="rgb24")


def face_embeddings(rgb_frames: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    found = []
    for frame in rgb_frames:
        try:
            found.append(bundled.face_embedding(np.ascontiguousarray(frame)))
        except RuntimeError:  # no face in this frame
            continue
    return np.array(found).reshape(-1, 128)


def voice_embedding(samples: npt.NDArray[Any], rate: int = VOICE_RATE) -> npt.NDArray[Any] | None:
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(samples.astype(np.float32), source_sr=rate)
    if len(wav) < rate:  # under a second of voiced audio
        return None
    return np.asarray(bundled.load_voice_encoder().embed_utterance(wav))


def motion(rgb_frames: list[npt.NDArray[Any]]) -> float:
    if len(rgb_frames) < 2:
        return 0.0
    grey = [f.astype(np.float32).mean(axis=2) for f in rgb_frames]
    return float(np.median([np.abs(a - b).mean() for a, b in zip(grey, grey[1:], strict=False)]))


def analyse(
    path: str | os.PathLike[str], samples: int = 12, max_seconds: float = CONSENT_MAX_SECONDS
) -> RecordingFeatures:
    """Faces, voice, timed words and head turns of a consent recording."""
    frames = sample_frames(path, samples, max_seconds)
    audio = media.audio(path, VOICE_RATE, max_seconds)
    heard = asr.transcribe(audio, VOICE_RATE) if len(audio) else None
    times, yaw = head_pose.sample_yaw(path, max_seconds=max_seconds)
    return RecordingFeatures(
        faces=face_embeddings(frames),
        frames_sampled=len(frames),
        voice=voice_embedding(audio) if len(audio) else None,
        transcript=heard.text if heard else "",
        digits=tuple((d, start) for d, start, _ in asr.spoken_digits(heard.words)) if heard else (),
        turns=tuple(head_pose.turn_events(times, yaw, TURN_DEGREES)),
        motion=motion(frames),
        duration_s=len(audio) / VOICE_RATE,
    )
