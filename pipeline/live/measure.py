"""Measuring a live stream as a viewer receives it: pull it, time its frames, find clips.

Used by the tests and by ``dhf bench live``. Everything is measured on what came back
from the server (a recording of the pulled stream), not on what the engine believes it
sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from compliance import media


class Puller:
    """``ffmpeg -i URL -c copy out.ts`` in the background: a viewer recording the stream.

    Started before the show goes live, it waits on the server's idle stream and records
    from the first frame. (ffmpeg probes a few seconds of stream before it writes: time
    the first frame at the server with ``RtmpServer.first_frame_at`` instead.)"""

    def __init__(self, url: str, out: Path):
        self.out = out
        cmd = [media.executable(), "-hide_banner", "-loglevel", "error", "-y"]
        cmd += ["-i", url, "-map", "0", "-c", "copy", "-f", "mpegts"]
        self.proc = subprocess.Popen([*cmd, os.fspath(out)], stderr=subprocess.PIPE)

    def finish(self, quiet_s: float = 1.5, timeout: float = 10.0) -> str:
        """Stop recording once nothing arrived for ``quiet_s`` (the server keeps a viewer of
        an ended stream waiting for the next publisher); returns ffmpeg's stderr."""
        deadline, last, size = time.monotonic() + timeout, time.monotonic(), -1
        while self.proc.poll() is None and time.monotonic() < deadline:
            now_size = self.out.stat().st_size if self.out.exists() else 0
            if now_size != size:
                size, last = now_size, time.monotonic()
            elif time.monotonic() - last >= quiet_s:
                break
            time.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # ffmpeg closes its output cleanly
        try:
            _, err = self.proc.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return (err or b"").decode(errors="replace")


@dataclass(frozen=True)
class StreamFacts:
    frames: int
    video_s: float  # last video timestamp - first, plus one frame
    audio_s: float
    fps: float  # frames per second of stream time
    stalls: int  # gaps between consecutive frames over 2 frame periods
    max_gap_s: float
    first_video_pts: float
    first_audio_pts: float

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def stream_facts(path: Path, fps: float = 25.0) -> StreamFacts:
    """Frame timing of a recording, from its packets (nothing decoded)."""
    video: list[float] = []
    audio_end, audio_start = 0.0, None
    with av.open(os.fspath(path)) as container:
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            t = float(packet.pts * packet.time_base)
            if packet.stream.type == "video":
                video.append(t)
            elif packet.stream.type == "audio":
                audio_start = t if audio_start is None else min(audio_start, t)
                duration = float((packet.duration or 0) * packet.time_base)
                audio_end = max(audio_end, t + duration)
    times = np.sort(np.asarray(video))
    gaps = np.diff(times) if len(times) > 1 else np.zeros(1)
    span = float(times[-1] - times[0]) + 1.0 / fps if len(times) else 0.0
    return StreamFacts(
        frames=len(times),
        video_s=span,
        audio_s=audio_end - (audio_start or 0.0),
        fps=(len(times) - 1) / float(times[-1] - times[0]) if len(times) > 1 else 0.0,
        stalls=int((gaps > 2.0 / fps).sum()),
        max_gap_s=float(gaps.max()),
        first_video_pts=float(times[0]) if len(times) else 0.0,
        first_audio_pts=audio_start or 0.0,
    )


def audio(path: Path, rate: int = 16000) -> npt.NDArray[Any]:
    """The recording's sound, mono float32 at ``rate``, from its first audio packet.

    A live recording may hold a damaged packet (a viewer joining or leaving mid-packet):
    it is skipped, and its span filled with silence so later sound keeps its time."""
    chunks: list[npt.NDArray[Any]] = []
    have = 0
    start: float | None = None
    with av.open(os.fspath(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                t = float(frame.time or 0.0)
                start = t if start is None else start
                gap = int(round((t - start) * rate)) - have
                if gap > rate // 10:  # a skipped packet: keep the timeline
                    chunks.append(np.zeros(gap, np.float32))
                    have += gap
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1).astype(np.float32))
                    have += len(chunks[-1])
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def cut(source: Path, out: Path, start_s: float, seconds: float) -> Path:
    """An excerpt re-encoded into MP4 (what a viewer's screen recorder would keep)."""
    media.ffmpeg(
        [
            "-ss",
            f"{start_s:.3f}",
            "-i",
            os.fspath(source),
            "-t",
            f"{seconds:.3f}",
            "-c:v",
            "libx264",
            "-crf",
            "20",
            "-c:a",
            "aac",
            os.fspath(out),
        ]
    )
    return out


def find_audio(
    haystack: npt.NDArray[Any], needle: npt.NDArray[Any], rate: int
) -> tuple[float, float]:
    """Where ``needle`` sounds in ``haystack``: (offset in s, normalised correlation 0..1)."""
    n = len(needle)
    if n == 0 or len(haystack) < n:
        return 0.0, 0.0
    size = 1 << int(np.ceil(np.log2(len(haystack) + n)))
    corr = np.fft.irfft(np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(needle, size)), size)
    corr = corr[: len(haystack) - n + 1]
    energy = np.convolve(haystack.astype(np.float64) ** 2, np.ones(n), "valid")
    norm = np.sqrt(np.maximum(energy, 1e-12) * float(np.sum(needle.astype(np.float64) ** 2)))
    score = corr / np.maximum(norm, 1e-12)
    best = int(np.argmax(score))
    return best / rate, float(score[best])


def frames_at(path: Path, times: list[float]) -> list[npt.NDArray[Any]]:
    """RGB frames of a recording at the given stream times (from its first frame)."""
    wanted, out, first = sorted(times), [], None
    with av.open(os.fspath(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            first = t if first is None else first
            while wanted and t - first + 1e-3 >= wanted[0]:
                wanted.pop(0)
                out.append(frame.to_ndarray(format="rgb24"))
            if not wanted:
                break
    return out


def video_times(path: Path) -> tuple[npt.NDArray[Any], list[npt.NDArray[Any]]]:
    """Every frame of a short recording, small and grey, with its time from the first."""
    times: list[float] = []
    pictures: list[npt.NDArray[Any]] = []
    with av.open(os.fspath(path)) as container:
        for frame in container.decode(video=0):
            times.append(float(frame.time or 0.0))
            small = frame.reformat(width=96, height=72, format="gray")
            pictures.append(small.to_ndarray().astype(np.float32))
    base = times[0] if times else 0.0
    return np.asarray(times) - base, pictures


def av_offset(
    recording: Path, clip: Path, clip_at_s: float, expected_s: float, window_s: float = 3.0
) -> dict[str, float]:
    """Where a clip's moment ``clip_at_s`` is in the recording, by sound and by picture,
    each found independently near ``expected_s`` (stream time of the clip's start).
    ``drift_s`` = audio position - video position (positive: sound late)."""
    rate = 16000
    facts = stream_facts(recording)
    lead = facts.first_audio_pts - facts.first_video_pts  # audio's start in stream time
    sound = audio(recording, rate)
    theirs = media.audio(clip, rate)
    needle = theirs[int(clip_at_s * rate) : int((clip_at_s + 2.0) * rate)]
    lo = max(0, int((expected_s + clip_at_s - window_s - lead) * rate))
    hi = int((expected_s + clip_at_s + window_s + 2.0 - lead) * rate)
    offset, score = find_audio(sound[lo:hi], needle, rate)
    audio_t = lead + lo / rate + offset - clip_at_s
    times, pictures = video_times(recording)
    target = None
    with av.open(os.fspath(clip)) as container:
        for frame in container.decode(video=0):
            if float(frame.time or 0.0) + 1e-3 >= clip_at_s:
                small = frame.reformat(width=96, height=72, format="gray")
                target = small.to_ndarray().astype(np.float32)
                break
    assert target is not None, "the clip is shorter than clip_at_s"
    near = [
        i for i, t in enumerate(times) if abs(t - (expected_s + clip_at_s)) <= window_s
    ] or list(range(len(times)))
    errors = [float(np.mean((pictures[i] - target) ** 2)) for i in near]
    best = near[int(np.argmin(errors))]
    video_t = float(times[best]) - clip_at_s
    return {
        "audio_s": round(audio_t, 4),
        "video_s": round(video_t, 4),
        "drift_s": round(audio_t - video_t, 4),
        "audio_score": round(score, 3),
        "video_mse": round(min(errors), 2),
    }
