"""A synthetic talking face: the bundled astronaut photo whose mouth opens with the audio.

The audio is a voiced buzz under a random syllable envelope; the mouth opening of each
video frame is that envelope at the frame's centre, so the right answer is known exactly.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from compliance import media
from pipeline.bundled import test_face

RATE = 16000
FPS = 25.0
SIZE = 256
MOUTH = (126, 152)  # mouth centre (x, y) in the 256-pixel crop
MAX_SHIFT = 14.0  # pixels the lower lip and jaw drop at full opening


def face(size: int = SIZE) -> np.ndarray:
    """The astronaut's face, square-cropped around the face and resized (RGB)."""
    return cv2.resize(test_face()[4:244, 105:345], (size, size), interpolation=cv2.INTER_AREA)


def envelope(seconds: float, seed: int) -> np.ndarray:
    """Syllable-like loudness in [0, 1] at RATE: bursts, short gaps and longer pauses."""
    rng = np.random.default_rng(seed)
    env = np.zeros(int(seconds * RATE), np.float32)
    t = 0.3
    while t < seconds - 0.3:
        length = rng.uniform(0.12, 0.35)
        a, b = int(t * RATE), int(min(t + length, seconds) * RATE)
        env[a:b] = rng.uniform(0.4, 1.0)
        t += length + (rng.uniform(0.5, 1.0) if rng.random() < 0.2 else rng.uniform(0.05, 0.3))
    kernel = np.hanning(int(0.06 * RATE)).astype(np.float32)
    return np.convolve(env, kernel / kernel.sum(), mode="same")


def speech(env: np.ndarray, seed: int) -> np.ndarray:
    """A buzz (harmonics of 130 Hz plus breath noise) under the envelope."""
    rng = np.random.default_rng(seed + 1)
    t = np.arange(len(env)) / RATE
    buzz = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 12))
    carrier = buzz / 3 + 0.3 * rng.standard_normal(len(env))
    return (0.4 * env * carrier).astype(np.float32)


def openings(env: np.ndarray, n_frames: int) -> np.ndarray:
    """The known mouth opening of each frame: the envelope at the frame's centre."""
    centres = ((np.arange(n_frames) + 0.5) / FPS * RATE).astype(int)
    return env[np.minimum(centres, len(env) - 1)]


def open_mouth(base: np.ndarray, amount: float) -> np.ndarray:
    """Drop the lower lip and chin by ``amount`` (0..1) of MAX_SHIFT and show the gap."""
    h, w = base.shape[:2]
    shift = amount * MAX_SHIFT
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    side = np.clip((60 - np.abs(xs - MOUTH[0])) / 20, 0, 1)
    below = np.clip((ys - MOUTH[1]) / 3, 0, 1) * np.clip((MOUTH[1] + 75 - ys) / 30, 0, 1)
    out = cv2.remap(base, xs, ys - shift * side * below, cv2.INTER_LINEAR)
    if shift >= 1:
        centre = (MOUTH[0], round(MOUTH[1] + shift / 2))
        cv2.ellipse(out, centre, (20, max(1, round(shift / 2))), 0, 0, 360, (70, 25, 30), -1)
    return out


def talking_video(path: Path, seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Write the synthetic talking face; return (audio samples, known opening per frame)."""
    env = envelope(seconds, seed)
    samples = speech(env, seed)
    n_frames = int(seconds * FPS)
    opening = openings(env, n_frames)
    base = face()
    frames = [open_mouth(base, float(o)) for o in opening]
    write_video(path, frames, samples)
    return samples, opening


def write_video(path: Path, frames: list[np.ndarray], samples: np.ndarray) -> None:
    """RGB frames + mono audio at RATE into an MP4."""
    wav = path.with_suffix(".wav")
    media.write_wav(wav, samples, RATE)
    h, w = frames[0].shape[:2]
    writer = media.FrameWriter(path, (w, h), FPS, wav, {})
    try:
        for rgb in frames:
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    finally:
        writer.close()
    wav.unlink()
