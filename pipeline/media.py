"""Probing media files with PyAV (the static ffmpeg we ship has no ffprobe)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import av


class MediaError(Exception):
    """The file is not media we can read; the message says what is wrong."""


@dataclass(frozen=True)
class MediaInfo:
    container: str
    duration_s: float
    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Read container and stream facts; raises MediaError for unreadable files."""
    try:
        with av.open(os.fspath(path)) as container:
            video = next(iter(container.streams.video), None)
            audio = next(iter(container.streams.audio), None)
            duration = container.duration / av.time_base if container.duration else 0.0
            if not duration and video is not None and video.duration and video.time_base:
                duration = float(video.duration * video.time_base)
            return MediaInfo(
                container=container.format.name,
                duration_s=round(float(duration), 3),
                has_video=video is not None,
                has_audio=audio is not None,
                width=video.codec_context.width if video else None,
                height=video.codec_context.height if video else None,
                fps=round(float(video.average_rate), 3) if video and video.average_rate else None,
                video_codec=video.codec_context.name if video else None,
                audio_codec=audio.codec_context.name if audio else None,
                sample_rate=audio.codec_context.sample_rate if audio else None,
            )
    except (av.error.FFmpegError, StopIteration, ValueError) as exc:  # type: ignore[attr-defined]
        raise MediaError(f"not a readable audio/video file ({exc})") from exc


def video_problems(info: MediaInfo) -> list[str]:
    """Reasons a file cannot serve as video source material (empty when it can)."""
    problems = []
    if not info.has_video:
        problems.append("no_video: the file has no video stream; upload a video recording")
    if not info.has_audio:
        problems.append("no_audio: the file has no sound; record with the microphone on")
    if info.duration_s <= 0:
        problems.append("empty: the recording has no length")
    return problems
