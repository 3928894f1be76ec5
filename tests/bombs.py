"""Hostile media built small with the bundled ffmpeg (issue 14): each is a few KB on disk
and would cost minutes of CPU or gigabytes of memory to a reader that trusts it."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from compliance import media


def no_duration_webm(out: Path, size: str = "640x360", seconds: int = 20) -> Path:
    """A WebM written to a pipe, as a browser recorder does: no duration in its header."""
    cmd = [media.executable(), "-hide_banner", "-loglevel", "error",
           "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
           "-c:v", "libvpx", "-b:v", "50k", "-deadline", "realtime", "-cpu-used", "8",
           "-f", "webm", "pipe:1"]  # fmt: skip
    out.write_bytes(subprocess.run(cmd, capture_output=True, check=True).stdout)
    return out


def huge_picture(out: Path, side: int = 8192) -> Path:
    """One black frame of ``side`` x ``side`` pixels: a few KB that decode to 100 MB."""
    media.ffmpeg(["-f", "lavfi", "-i", f"color=c=black:s={side}x{side}:d=0.04:r=25",
                  "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                  str(out)])  # fmt: skip
    return out


def ten_hour_header(out: Path, claimed_s: float = 36_000.0) -> Path:
    """A 1 s Matroska file whose header claims ``claimed_s`` seconds."""
    real = out.with_name("real-" + out.name)
    media.ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1",
                  "-c:v", "mpeg4", "-f", "matroska", str(real)])  # fmt: skip
    raw = bytearray(real.read_bytes())
    at = raw.find(b"\x44\x89\x88")  # Segment Info > Duration, an 8-byte float in ms
    assert at > 0, "no Matroska duration element"
    raw[at + 3 : at + 11] = struct.pack(">d", claimed_s * 1000.0)
    out.write_bytes(bytes(raw))
    real.unlink()
    return out
