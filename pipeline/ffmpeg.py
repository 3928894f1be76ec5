"""The one wrapper around ffmpeg: the static binary from imageio-ffmpeg, called with
argument lists through ffmpeg-python, errors re-raised with ffmpeg's own stderr."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

import ffmpeg
import imageio_ffmpeg


class FFmpegFailed(RuntimeError):
    """ffmpeg exited non-zero; the message ends with the tail of its stderr."""


@functools.cache
def executable() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def run(stream: Any, *, overwrite: bool = True) -> None:
    """Run an ffmpeg-python stream graph, quietly, raising FFmpegFailed with stderr."""
    try:
        ffmpeg.run(stream, cmd=executable(), quiet=True, overwrite_output=overwrite)
    except ffmpeg.Error as exc:
        tail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-8:]
        raise FFmpegFailed("ffmpeg failed:\n" + "\n".join(tail)) from exc


def selftest() -> str:
    """Encode one second of test video and tone with libx264 + aac into MP4."""
    with tempfile.TemporaryDirectory(prefix="dhf-ffmpeg-") as tmp:
        out = Path(tmp) / "t.mp4"
        video = ffmpeg.input("testsrc2=size=160x120:rate=25:duration=1", f="lavfi")
        audio = ffmpeg.input("sine=frequency=440:duration=1", f="lavfi")
        run(
            ffmpeg.output(
                video,
                audio,
                os.fspath(out),
                vcodec="libx264",
                acodec="aac",
                pix_fmt="yuv420p",
                movflags="+faststart",
            )
        )
        size = out.stat().st_size
    if size < 1000:
        raise FFmpegFailed(f"encoded test file is only {size} bytes")
    return f"libx264 + aac encode ok ({size} bytes for 1 s)"
