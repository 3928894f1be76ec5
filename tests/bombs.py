"""Hostile media built small with the bundled ffmpeg (issue 14); the builders live in
``compliance.bench`` so ``dhf bench verify`` submits the same files."""

from compliance.bench import huge_picture, no_duration_webm, ten_hour_header

__all__ = ["huge_picture", "no_duration_webm", "ten_hour_header"]
