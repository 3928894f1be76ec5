"""WORLD analysis and resynthesis, the base voice, DTW: the signal layer of the voice model.

All at 16 kHz (the rate of the customer's takes after ``compliance.media.audio``) with
5 ms frames. Spectral envelopes are coded as mel-cepstra (``pyworld.code_spectral_envelope``);
F0 comes from harvest (dio halves or doubles the piper voice's pitch now and then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyworld

from compliance.media import resample

RATE = 16000  # analysis rate: the takes' own (slt and the browser recorder's uploads)
OUTPUT_RATE = 22050  # the product's output rate (as the base voice); the band above
# RATE / 2 stays empty: the takes carry no more, and the clone is resampled, not extended
FRAME_MS = 5.0
F0_FLOOR, F0_CEIL = 60.0, 500.0


@dataclass
class World:
    """One utterance's WORLD parameters, one row per 5 ms frame."""

    f0: npt.NDArray[Any]  # (T,) Hz, 0 where unvoiced
    mcep: npt.NDArray[Any]  # (T, D) coded spectral envelope
    cap: npt.NDArray[Any]  # (T, 1) coded aperiodicity

    @property
    def voiced(self) -> npt.NDArray[Any]:
        return self.f0 > 0

    def lf0(self) -> npt.NDArray[Any]:
        """log-F0, interpolated linearly through unvoiced frames (for regression)."""
        return interpolate_lf0(self.f0)

    def trim(self, start_s: float, end_s: float) -> World:
        a, b = int(start_s * 1000 / FRAME_MS), int(end_s * 1000 / FRAME_MS) + 1
        return World(self.f0[a:b], self.mcep[a:b], self.cap[a:b])


def interpolate_lf0(f0: npt.NDArray[Any]) -> npt.NDArray[Any]:
    voiced = f0 > 0
    if not voiced.any():
        return np.full(len(f0), np.log(150.0))
    idx = np.arange(len(f0))
    return np.interp(idx, idx[voiced], np.log(f0[voiced]))


def analyse(samples: npt.NDArray[Any], order: int) -> World:
    """WORLD parameters of 16 kHz float speech with an ``order``-dim mel-cepstrum."""
    x = np.ascontiguousarray(samples, np.float64)
    f0, t = pyworld.harvest(x, RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
    sp = pyworld.cheaptrick(x, f0, t, RATE)
    ap = pyworld.d4c(x, f0, t, RATE)
    return World(
        f0,
        pyworld.code_spectral_envelope(sp, RATE, order),
        pyworld.code_aperiodicity(ap, RATE),
    )


def synthesise(world: World) -> npt.NDArray[np.float32]:
    """Waveform (float32, 16 kHz) from WORLD parameters."""
    fft = pyworld.get_cheaptrick_fft_size(RATE)
    sp = pyworld.decode_spectral_envelope(np.ascontiguousarray(world.mcep, np.float64), RATE, fft)
    ap = pyworld.decode_aperiodicity(np.ascontiguousarray(world.cap, np.float64), RATE, fft)
    f0 = np.ascontiguousarray(world.f0, np.float64)
    wave: npt.NDArray[np.float64] = pyworld.synthesize(f0, sp, ap, RATE, FRAME_MS)  # untyped
    return wave.astype(np.float32)


def base_voice(text: str, length_scale: float = 1.0) -> npt.NDArray[Any]:
    """The shipped piper voice saying ``text`` (noise off: reproducible), at 16 kHz."""
    from piper.config import SynthesisConfig

    from ..bundled import load_piper_voice

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=length_scale)
    chunks = list(load_piper_voice().synthesize(text, syn_config=config))
    audio = np.concatenate([c.audio_float_array for c in chunks])
    return resample(audio, chunks[0].sample_rate, RATE)


def to_output_rate(samples: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """16 kHz speech resampled to ``OUTPUT_RATE`` (polyphase, float32)."""
    return resample(samples, RATE, OUTPUT_RATE)


def dtw_path(
    source: npt.NDArray[Any], target: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Frame pairs (source index, target index) of the cheapest monotonic alignment."""
    from librosa.sequence import dtw

    _, path = dtw(X=source.T, Y=target.T, metric="euclidean", backtrack=True)
    path = path[::-1]
    return path[:, 0], path[:, 1]


def mel_cepstral_distortion(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """MCD in dB between two mel-cepstra (frames paired already), c0 excluded."""
    diff = a[:, 1:] - b[:, 1:]
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * np.sum(diff**2, axis=1))))


def normalise_loudness(
    samples: npt.NDArray[Any], target_dbfs: float = -23.0
) -> npt.NDArray[np.float32]:
    """Scale so the RMS of the louder (speech) half of 20 ms frames is ``target_dbfs``,
    with the peak kept below -1 dBFS."""
    hop = 320  # 20 ms at 16 kHz (14.5 ms at 22.05 kHz: the same speech/pause split)
    n = len(samples) // hop
    if n == 0:
        return samples.astype(np.float32)
    energy = np.square(samples[: n * hop].reshape(n, hop)).mean(axis=1)
    speech = energy[energy >= np.median(energy)]
    gain = 10 ** (target_dbfs / 20) / (np.sqrt(speech.mean()) + 1e-9)
    gain = min(gain, 0.89 / (np.abs(samples).max() + 1e-9))
    scaled: npt.NDArray[np.float32] = (samples * gain).astype(np.float32)
    return scaled
