"""Audio features aligned to video frames: log-mel (4 mel frames per video frame), energy.

Audio is resampled to 16 kHz; mel frames are sampled at the centres of four equal slices
of each video frame, so frame ``i`` of the video owns mel rows ``4i .. 4i+3``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from compliance import media

RATE = 16000
N_FFT = 512
HOP = 160  # 10 ms
N_MELS = 80
PER_FRAME = 4  # mel rows per video frame


@functools.cache
def _mel_basis() -> npt.NDArray[Any]:
    import librosa

    return librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=40, fmax=7600)


def _stft_power(samples: npt.NDArray[Any]) -> npt.NDArray[Any]:
    pad = np.pad(samples.astype(np.float32), (N_FFT // 2, N_FFT // 2), mode="reflect")
    count = 1 + (len(pad) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None] + HOP * np.arange(count)[:, None]
    spec = np.fft.rfft(pad[idx] * np.hanning(N_FFT).astype(np.float32), axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def log_mel(
    samples: npt.NDArray[Any], rate: int, n_frames: int, fps: float
) -> npt.NDArray[np.float32]:
    """(n_frames * 4, 80) log-mel rows aligned to ``n_frames`` video frames."""
    pcm = media.resample(samples, rate, RATE)
    if len(pcm) < N_FFT:
        pcm = np.pad(pcm, (0, N_FFT - len(pcm)))
    mel = np.log(_stft_power(pcm) @ _mel_basis().T + 1e-6)
    times = (np.arange(n_frames * PER_FRAME) + 0.5) / (PER_FRAME * fps)
    pos = np.clip(times * RATE / HOP, 0, len(mel) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(mel) - 1)
    frac = (pos - lo)[:, None].astype(np.float32)
    rows: npt.NDArray[np.float32] = (mel[lo] * (1 - frac) + mel[hi] * frac).astype(np.float32)
    return rows


def energy_db(samples: npt.NDArray[Any], rate: int, n_frames: int, fps: float) -> npt.NDArray[Any]:
    """RMS level of each video frame's audio slice, in dB."""
    edges = (np.arange(n_frames + 1) / fps * rate).astype(int)
    out = np.empty(n_frames, np.float32)
    for i in range(n_frames):
        chunk = samples[edges[i] : max(edges[i + 1], edges[i] + 1)]
        out[i] = 10 * np.log10(float(np.mean(chunk.astype(np.float64) ** 2)) + 1e-10)
    return out


def silence(
    level_db: npt.NDArray[Any], below: float, loud_db: float | None = None
) -> npt.NDArray[Any]:
    """Frames whose level is ``below`` dB under the loud level (95th percentile by default)."""
    loud = np.percentile(level_db, 95) if loud_db is None else loud_db
    quiet = level_db < max(loud - below, -70.0)
    # speech onsets move the mouth early: a frame next to sound is not silent
    near = np.convolve((~quiet).astype(int), np.ones(5, int), mode="same") > 0
    return quiet & ~near
