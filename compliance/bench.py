"""``dhf bench watermark``: how the invisible watermark survives what files go through.

Stamps a real clip, applies each transform with ffmpeg, then reads the video and audio
marks separately. Per case: bit accuracy before error correction, whether the right id
was decided, and the p-value bound; plus embedding / detection speed and PSNR.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from . import audio_watermark, media
from .payload import new_watermark_id
from .stamping import ComplianceSettings, ContentSpec, stamp
from .watermark import decode_video, embed_frame

# name -> ffmpeg arguments applied to the stamped file (input -> output)
CASES: dict[str, list[str]] = {
    "clean": ["-c", "copy"],
    "h264_crf23": ["-c:v", "libx264", "-crf", "23", "-c:a", "copy"],
    "h264_crf28": ["-c:v", "libx264", "-crf", "28", "-c:a", "copy"],
    "scale_50pct_and_back": ["-vf", "scale=iw/2:ih/2,scale=iw*2:ih*2", "-c:a", "copy"],
    "crop_10pct_border": ["-vf", "crop=iw*0.8:ih*0.8", "-c:a", "copy"],
    "fps_25_to_30": ["-vf", "fps=30", "-c:a", "copy"],
    "aac_128k": ["-c:v", "copy", "-c:a", "aac", "-b:a", "128k"],
    "aac_64k": ["-c:v", "copy", "-c:a", "aac", "-b:a", "64k"],
    "mp3_128k": ["-c:v", "copy", "-c:a", "libmp3lame", "-b:a", "128k", "-f", "matroska"],
    "trim_first_2s": ["-ss", "2", "-c:v", "libx264", "-crf", "18", "-c:a", "aac"],
    "clip_10s": ["-ss", "4", "-t", "10", "-c:v", "libx264", "-crf", "18", "-c:a", "aac"],
}

# name -> ffmpeg arguments applied to a stamped 1280x720 file (the upscaled clip)
CASES_720P: dict[str, list[str]] = {
    "scale_720p_to_480p": ["-vf", "scale=854:480", "-c:a", "copy"],
    "crop_10pct_border_720p": ["-vf", "crop=iw*0.8:ih*0.8", "-c:a", "copy"],
    # re-uploads to vertical platforms: the 9:16 centre of the 16:9 frame, rescaled
    "crop_9x16_centre_720x1280": ["-vf", "crop=ih*9/16:ih,scale=720:1280", "-c:a", "copy"],
    "crop_9x16_centre_360x640": ["-vf", "crop=ih*9/16:ih,scale=360:640", "-c:a", "copy"],
    # a screen recording: rescaled, slightly blurred, re-encoded at a low bitrate
    "screen_recording": [
        "-vf",
        "scale=960:540,gblur=sigma=0.6",
        "-c:v",
        "libx264",
        "-b:v",
        "600k",
        "-c:a",
        "aac",
        "-b:a",
        "96k",
    ],
}


def _read(
    path: Path, bits: npt.NDArray[Any], wid: str, settings: ComplianceSettings
) -> dict[str, Any]:
    codec = settings.codec()
    result: dict[str, Any] = {}
    start = time.perf_counter()
    facts = media.video_facts(path)
    every = max(1, facts.frames // settings.video.decode_frames)
    frames = list(media.frames(path, fmt="bgr24", every=every))
    found = decode_video(frames, codec, settings.video)
    decision, soft, where = found.decision, found.soft, found.geometry
    seconds = time.perf_counter() - start
    result["video"] = {
        "bit_accuracy": round(float(np.mean((soft > 0) == bits)), 4),
        "decided": decision.found and decision.watermark_id == wid,
        "found_any": decision.found,
        "p_value": decision.p_value,
        "detect_seconds": round(seconds, 2),
        "detect_fps": round(len(frames) / seconds, 1),
        "frames": len(frames),
        "size": list(where.size) if where else None,
        "offset": list(where.offset) if where else None,
        "columns": where.columns if where else None,
        "phase": where.phase if where else None,
        "sharpen": where.sharpen if where else None,
        "sync_z": round(found.sync, 1),
        "candidates": found.candidates,
    }
    start = time.perf_counter()
    samples = media.audio(path, settings.audio_rate)
    key = settings.audio_key(settings.watermark_keys[0][1])
    soft_a = audio_watermark.detect(samples, settings.audio_rate, codec.n_bits, key)
    seconds = len(samples) / settings.audio_rate
    decision = codec.decode(soft_a / max(float(np.abs(soft_a).max()), 1e-12))
    result["audio"] = {
        "bit_accuracy": round(float(np.mean((soft_a > 0) == bits)), 4),
        "decided": decision.found and decision.watermark_id == wid,
        "found_any": decision.found,
        "p_value": decision.p_value,
        "detect_x_realtime": round(seconds / (time.perf_counter() - start), 1),
    }
    result["decided"] = result["video"]["decided"] or result["audio"]["decided"]
    return result


def _speed(
    frames: list[npt.NDArray[Any]], bits: npt.NDArray[Any], settings: ComplianceSettings
) -> dict[str, Any]:
    start = time.perf_counter()
    marked = [embed_frame(f, bits, settings.video) for f in frames]
    fps = len(frames) / (time.perf_counter() - start)
    psnr = float(np.mean([cv2.PSNR(a, b) for a, b in zip(frames, marked, strict=True)]))
    square = [cv2.resize(f, (512, 512)) for f in frames[:50]]
    start = time.perf_counter()
    for f in square:
        embed_frame(f, bits, settings.video)
    return {
        "embed_fps_native": round(fps, 1),
        "embed_fps_512x512": round(len(square) / (time.perf_counter() - start), 1),
        "psnr_db": round(psnr, 2),
        "native_size": [frames[0].shape[1], frames[0].shape[0]],
    }


def watermark_matrix(clips: Sequence[Path], settings: ComplianceSettings) -> dict[str, Any]:
    """Run every case on the joined clips and on a 720p version of them; return the matrix.

    The unmarked sources go through the same transforms: any mark found there is a false
    positive.
    """
    with tempfile.TemporaryDirectory(prefix="dhf-bench-") as tmp:
        work = Path(tmp)
        source, source720 = work / "source.mp4", work / "source720.mp4"
        media.concat(clips, source)
        media.concat(clips, source720, (1280, 720))
        wid = new_watermark_id()
        bits = settings.codec().encode(wid)
        start = time.perf_counter()
        record = stamp(source, work / "stamped.mp4", ContentSpec("bench" + wid, wid), settings)
        stamp_s = time.perf_counter() - start
        rows = {}
        for name, args in CASES.items():
            out = work / f"{name}.mkv" if "matroska" in args else work / f"{name}.mp4"
            media.ffmpeg(["-i", str(work / "stamped.mp4"), *args, str(out)])
            rows[name] = _read(out, bits, wid, settings)
        wid720 = new_watermark_id()
        bits720 = settings.codec().encode(wid720)
        stamp(source720, work / "s720.mp4", ContentSpec("bench" + wid720, wid720), settings)
        unmarked_rows = {"source": _read(source, bits, wid, settings)}
        for name, args in CASES_720P.items():
            media.ffmpeg(["-i", str(work / "s720.mp4"), *args, str(work / f"{name}.mp4")])
            rows[name] = _read(work / f"{name}.mp4", bits720, wid720, settings)
            media.ffmpeg(["-i", str(source720), *args, str(work / f"u_{name}.mp4")])
            unmarked_rows[name] = _read(work / f"u_{name}.mp4", bits720, wid720, settings)
        media.ffmpeg(["-i", str(source), *CASES["crop_10pct_border"], str(work / "u_crop.mp4")])
        unmarked_rows["crop_10pct_border"] = _read(work / "u_crop.mp4", bits, wid, settings)
        unmarked = unmarked_rows["source"]
        frames = list(media.frames(source, fmt="bgr24"))[:250]
        return {
            "clip_seconds": round(record.duration_s, 2),
            "stamp_seconds": round(stamp_s, 2),
            "stamp_x_realtime": round(record.duration_s / stamp_s, 2),
            "speed": _speed(frames, bits, settings),
            "cases": rows,
            "unmarked_source": unmarked,
            "unmarked": unmarked_rows,
            "all_decided": all(r["decided"] for r in rows.values()),
            "all_decided_by_video_alone": all(r["video"]["decided"] for r in rows.values()),
            "false_positive_on_unmarked": any(
                r["video"]["found_any"] or r["audio"]["found_any"] for r in unmarked_rows.values()
            ),
            "video_p_value_bound": max(r["video"]["p_value"] for r in rows.values()),
        }


# -- hostile media (issue 14): a few hundred KB that would cost minutes or gigabytes ----


def no_duration_webm(out: Path, size: str = "640x360", seconds: int = 20) -> Path:
    """A WebM written to a pipe, as a browser recorder does: no duration in its header."""
    cmd = [
        media.executable(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate=25:duration={seconds}",
        "-c:v",
        "libvpx",
        "-b:v",
        "50k",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-f",
        "webm",
        "pipe:1",
    ]
    out.write_bytes(subprocess.run(cmd, capture_output=True, check=True).stdout)
    return out


def huge_picture(out: Path, side: int = 8192) -> Path:
    """One black frame of ``side`` x ``side`` pixels: a few KB that decode to 100 MB."""
    media.ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"color=c=black:s={side}x{side}:d=0.04:r=25",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(out),
        ]
    )
    return out


def ten_hour_header(out: Path, claimed_s: float = 36_000.0) -> Path:
    """A 1 s Matroska file whose header claims ``claimed_s`` seconds."""
    real = out.with_name("real-" + out.name)
    media.ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=1",
            "-c:v",
            "mpeg4",
            "-f",
            "matroska",
            str(real),
        ]
    )
    raw = bytearray(real.read_bytes())
    at = raw.find(b"\x44\x89\x88")  # Segment Info > Duration, an 8-byte float in ms
    assert at > 0, "no Matroska duration element"
    raw[at + 3 : at + 11] = struct.pack(">d", claimed_s * 1000.0)
    out.write_bytes(bytes(raw))
    real.unlink()
    return out
