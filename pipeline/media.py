"""What an upload must be to serve as source material (probing lives in compliance.media)."""

from __future__ import annotations

from compliance.media import MediaInfo


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
