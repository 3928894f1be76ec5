"""Media I/O for the compliance library: the one ffmpeg wrapper, frame and audio readers.

ffmpeg is the static binary from imageio-ffmpeg, always called with argument lists;
failures raise FFmpegFailed carrying the tail of ffmpeg's stderr. Reading uses PyAV.
(``pipeline`` uses this module too: the dependency rule lets it import compliance.)
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

import av
import imageio_ffmpeg
import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly


class FFmpegFailed(RuntimeError):
    """ffmpeg exited non-zero; the message ends with the tail of its stderr."""


@functools.cache
def executable() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def ffmpeg(args: Sequence[str], *, stdin: bytes | None = None) -> None:
    """Run ``ffmpeg -y -hide_banner -loglevel error ARGS``; raise FFmpegFailed on error."""
    cmd = [executable(), "-y", "-hide_banner", "-loglevel", "error", *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-8:]
        raise FFmpegFailed("ffmpeg failed:\n" + "\n".join(tail))


def selftest() -> str:
    """Encode one second of test video and tone with libx264 + aac into MP4."""
    with tempfile.TemporaryDirectory(prefix="dhf-ffmpeg-") as tmp:
        out = Path(tmp) / "t.mp4"
        ffmpeg(
            [
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x120:rate=25:duration=1",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=1",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                os.fspath(out),
            ]
        )
        size = out.stat().st_size
    if size < 1000:
        raise FFmpegFailed(f"encoded test file is only {size} bytes")
    return f"libx264 + aac encode ok ({size} bytes for 1 s)"


def concat(
    clips: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
) -> None:
    """Join clips (video + audio) into one high-quality MP4, optionally rescaled."""
    args: list[str] = []
    for clip in clips:
        args += ["-i", os.fspath(clip)]
    streams = "".join(f"[{i}:v][{i}:a]" for i in range(len(clips)))
    graph = f"{streams}concat=n={len(clips)}:v=1:a=1[v][a]"
    if size:
        graph += f";[v]scale={size[0]}:{size[1]}[v]"
    codecs = ["-c:v", "libx264", "-crf", "12", "-c:a", "aac", "-b:a", "192k"]
    ffmpeg([*args, "-filter_complex", graph, "-map", "[v]", "-map", "[a]", *codecs, os.fspath(out)])


class MediaError(Exception):
    """The file is not media we can read; the message says what is wrong."""


class MediaLimitExceeded(MediaError):
    """The file is over one of the configured ``MediaLimits``; ``limit`` names it."""

    def __init__(self, limit: str, message: str):
        super().__init__(message)
        self.limit = limit
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:  # survives a trip through a pipe
        return (type(self), (self.limit, self.message))


@dataclass(frozen=True)
class MediaLimits:
    """What a file may be before we decode it (configured as ``DHF_MEDIA_MAX_*``).

    Every check runs on the header first (``check_limits``) and again while reading
    (``sample_frames``, ``stream_seconds``), so a header that lies gains nothing.
    """

    max_pixels: int = 3840 * 2160  # width x height of one picture (4K UHD)
    max_seconds: float = 900.0  # running time, from the container or the stream's packets
    max_frames: int = 54_000  # pictures in the file (900 s at 60 frames a second)
    max_decoded_bytes: int = 64 * 1024**3  # raw YUV 4:2:0 bytes one reader may decode


def _refuse(limit: str, what: str, allowed: str) -> MediaLimitExceeded:
    return MediaLimitExceeded(
        limit,
        f"{what}; at most {allowed} can be processed (limit {limit}, DHF_MEDIA_{limit.upper()}).",
    )


def _picture_bytes(width: int, height: int) -> int:
    return width * height * 3 // 2  # one decoded YUV 4:2:0 picture


def check_limits(info: MediaInfo, limits: MediaLimits) -> MediaInfo:
    """Raise MediaLimitExceeded if ``info`` is over any limit; return it otherwise."""
    pixels = (info.width or 0) * (info.height or 0)
    if pixels > limits.max_pixels:
        raise _refuse(
            "max_pixels",
            f"The video is {info.width}x{info.height} pixels",
            f"{limits.max_pixels} pixels a picture",
        )
    if info.duration_s > limits.max_seconds:
        raise _refuse(
            "max_seconds", f"The file runs {info.duration_s:.0f} s", f"{limits.max_seconds:.0f} s"
        )
    if info.frames > limits.max_frames:
        raise _refuse(
            "max_frames", f"The video has {info.frames} frames", f"{limits.max_frames} frames"
        )
    decoded = info.frames * _picture_bytes(info.width or 0, info.height or 0)
    if decoded > limits.max_decoded_bytes:
        raise _refuse(
            "max_decoded_bytes",
            f"The video decodes to {decoded / 2**30:.1f} GiB",
            f"{limits.max_decoded_bytes / 2**30:.1f} GiB",
        )
    return info


Source = str | os.PathLike[str] | IO[bytes]


def _open(source: Source) -> Any:
    if hasattr(source, "read"):
        source.seek(0)  # type: ignore[union-attr]
        return av.open(source)
    return av.open(os.fspath(source))


def stream_seconds(container: Any, limits: MediaLimits) -> float:
    """How long the first video (else audio) stream runs, from packet timestamps, demuxed
    without decoding: a file written to a pipe has no duration in its header. Reading
    stops, refusing the file, once it passes ``max_seconds`` or ``max_frames`` packets."""
    streams = container.streams
    stream = streams.video[0] if streams.video else streams.audio[0]
    end, count = 0.0, 0
    for packet in container.demux(stream):
        count += 1
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        if end > limits.max_seconds:
            raise _refuse(
                "max_seconds",
                f"The file runs over {limits.max_seconds:.0f} s",
                f"{limits.max_seconds:.0f} s",
            )
        if stream.type == "video" and count > limits.max_frames:
            raise _refuse(
                "max_frames",
                f"The video has over {limits.max_frames} frames",
                f"{limits.max_frames} frames",
            )
    return end


@dataclass(frozen=True)
class MediaInfo:
    container: str
    duration_s: float
    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frames: int = 0  # from the container, else estimated from duration and fps
    video_codec: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None  # None when there is no audio track
    duration_from: str = "container"  # or "packets": demuxed because the header had none

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(width, height)`` of the video stream (``video_facts`` files have one)."""
        if self.width is None or self.height is None:
            raise ValueError("the file has no video stream")
        return self.width, self.height

    @property
    def frame_rate(self) -> float:
        """Frames per second of the video stream (``video_facts`` fills in 25 if unknown)."""
        if self.fps is None:
            raise ValueError("the video stream has no frame rate")
        return self.fps


def _header(container: Any) -> MediaInfo:
    video = next(iter(container.streams.video), None)
    audio = next(iter(container.streams.audio), None)
    duration = container.duration / av.time_base if container.duration else 0.0
    if not duration and video is not None and video.duration and video.time_base:
        duration = float(video.duration * video.time_base)
    fps = float(video.average_rate) if video and video.average_rate else None
    return MediaInfo(
        container=container.format.name,
        duration_s=round(float(duration), 3),
        has_video=video is not None,
        has_audio=audio is not None,
        width=video.codec_context.width if video else None,
        height=video.codec_context.height if video else None,
        fps=round(fps, 3) if fps else None,
        frames=(video.frames or int(round(duration * fps))) if video and fps else 0,
        video_codec=video.codec_context.name if video else None,
        audio_codec=audio.codec_context.name if audio else None,
        sample_rate=audio.codec_context.sample_rate if audio else None,
    )


def probe(source: Source, limits: MediaLimits | None = None) -> MediaInfo:
    """Container and stream facts, checked against ``limits`` before anything is decoded.

    The header is checked first (a file claiming 10 hours is refused by its claim); when
    it has no duration, the packets are demuxed (not decoded) to find it, capped by the
    limits. Raises MediaError for unreadable files, MediaLimitExceeded over a limit.
    """
    lim = limits or MediaLimits()
    try:
        with _open(source) as container:
            info = check_limits(_header(container), lim)
            if info.duration_s <= 0 and (info.has_video or info.has_audio):
                seconds = stream_seconds(container, lim)
                frames = int(round(seconds * info.fps)) if info.fps else info.frames
                info = replace(
                    info, duration_s=round(seconds, 3), frames=frames, duration_from="packets"
                )
            return check_limits(info, lim)
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise MediaError(f"not a readable audio/video file ({exc})") from exc


def video_facts(path: str | os.PathLike[str], limits: MediaLimits | None = None) -> MediaInfo:
    """``probe`` for files that must have a video stream (25 fps assumed when unknown)."""
    info = probe(path, limits)
    if not info.has_video:
        raise ValueError("the file has no video stream")
    if info.fps is None:
        info = replace(info, fps=25.0, frames=info.frames or int(round(info.duration_s * 25)))
    return info


def frames(
    path: str | os.PathLike[str], fmt: str = "rgb24", every: int = 1
) -> Iterator[npt.NDArray[Any]]:
    """Decoded frames as uint8 arrays (``rgb24`` or ``bgr24``), every ``every``-th one.

    Unbounded: only for our own files (stamping, benchmarks). Uploads go through
    ``sample_frames``."""
    with av.open(os.fspath(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % every == 0:
                yield frame.to_ndarray(format=fmt)


def _scaled(frame: Any, max_side: int | None, fmt: str) -> npt.NDArray[np.uint8]:
    if max_side and max(frame.width, frame.height) > max_side:
        scale = max_side / max(frame.width, frame.height)
        frame = frame.reformat(
            width=max(2, int(frame.width * scale) // 2 * 2),
            height=max(2, int(frame.height * scale) // 2 * 2),
        )
    image: npt.NDArray[np.uint8] = frame.to_ndarray(format=fmt)  # av is untyped
    return image


def sample_frames(
    path: str | os.PathLike[str],
    info: MediaInfo,
    count: int,
    limits: MediaLimits | None = None,
    *,
    fmt: str = "rgb24",
    max_side: int | None = 640,
) -> list[npt.NDArray[Any]]:
    """Up to ``count`` frames chosen by time, evenly over ``info.duration_s``.

    Frames are decoded one at a time and only the chosen ones are kept, scaled to at most
    ``max_side`` pixels on the longer side: memory holds ``count`` small pictures whatever
    the file. Decoding stops at the file's probed end, and refuses the file if a picture is
    over ``max_pixels`` or the decoded bytes pass ``max_decoded_bytes`` (a lying header).
    """
    lim = limits or MediaLimits()
    seconds = max(info.duration_s, 1e-3)
    wanted = list((np.arange(count) + 0.5) * seconds / count)
    kept: list[npt.NDArray[Any]] = []
    decoded = 0
    with av.open(os.fspath(path)) as container:
        for frame in container.decode(video=0):
            decoded += _picture_bytes(frame.width, frame.height)
            if frame.width * frame.height > lim.max_pixels:
                raise _refuse(
                    "max_pixels",
                    f"A picture is {frame.width}x{frame.height} pixels",
                    f"{lim.max_pixels} pixels",
                )
            if decoded > lim.max_decoded_bytes:
                raise _refuse(
                    "max_decoded_bytes",
                    "The video decodes to more data than allowed",
                    f"{lim.max_decoded_bytes / 2**30:.1f} GiB",
                )
            moment = float(frame.time or 0.0)
            if not wanted or moment > seconds + 1.0:
                break
            if moment + 0.02 >= wanted[0]:
                while wanted and moment + 0.02 >= wanted[0]:
                    wanted.pop(0)
                kept.append(_scaled(frame, max_side, fmt))
    return kept


def audio(
    path: str | os.PathLike[str], sample_rate: int, max_seconds: float | None = None
) -> npt.NDArray[np.float32]:
    """The first audio track as float32 mono in [-1, 1] at ``sample_rate`` (empty if none);
    with ``max_seconds``, decoding stops there whatever the header claims."""
    with av.open(os.fspath(path)) as container:
        if not container.streams.audio:
            return np.zeros(0, np.float32)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[npt.NDArray[np.float32]] = []
        have = 0
        limit = None if max_seconds is None else int(max_seconds * sample_rate)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
                have += len(chunks[-1])
            if limit is not None and have >= limit:
                return np.concatenate(chunks)[:limit].astype(np.float32)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def resample(samples: npt.NDArray[Any], rate_in: int, rate_out: int) -> npt.NDArray[np.float32]:
    if rate_in == rate_out:
        return samples.astype(np.float32)
    g = np.gcd(rate_in, rate_out)
    resampled: npt.NDArray[np.floating[Any]] = resample_poly(samples, rate_out // g, rate_in // g)
    return resampled.astype(np.float32)


def write_wav(path: str | os.PathLike[str], samples: npt.NDArray[Any], sample_rate: int) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(os.fspath(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


class FrameWriter:
    """Encodes BGR frames piped into ffmpeg, muxed with a WAV file, into an MP4.

    ``metadata`` entries are written as MP4 ``udta/meta`` keys (``use_metadata_tags``):
    without that flag ffmpeg silently drops keys it does not know, such as ``AIGC``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        size: tuple[int, int],
        fps: float,
        wav: str | os.PathLike[str],
        metadata: dict[str, str],
        crf: int = 18,
        preset: str = "veryfast",
        movflags: str = "+faststart+use_metadata_tags",
    ):
        width, height = size
        meta = [a for k, v in metadata.items() for a in ("-metadata", f"{k}={v}")]
        cmd = [
            executable(),
            "-y",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-s",
            f"{width}x{height}",
            "-r",
            f"{fps}",
            "-i",
            "-",
            "-i",
            os.fspath(wav),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "160k",
            "-shortest",
            *meta,
            "-movflags",
            movflags,
            os.fspath(path),
        ]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, bgr: npt.NDArray[Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(np.ascontiguousarray(bgr).tobytes())

    def close(self) -> None:
        assert self._proc.stdin is not None and self._proc.stderr is not None
        self._proc.stdin.close()
        with self._proc.stderr:
            stderr = self._proc.stderr.read()
        if self._proc.wait() != 0:
            tail = stderr.decode(errors="replace").strip().splitlines()[-8:]
            raise FFmpegFailed("ffmpeg failed:\n" + "\n".join(tail))
