"""Keyed spread-spectrum audio watermark with soft bit output.

Method. The signal is resampled to 16 kHz and cut into STFT frames (1024-point sqrt-Hann,
hop 512). Every time-frequency cell of the mark band (500-6000 Hz) carries one chip of one
payload bit: a SHA-256-seeded generator assigns each cell of a block (80 frames, ~2.6 s) to a
bit and gives it a +/-1 sign, and the block repeats through the whole signal. Embedding scales
a cell's magnitude by ``exp(sign * (2b - 1) * gain * weight)``: a log-magnitude change,
so the mark follows the signal's own energy, weighted towards cells below their local
spectral envelope (where energy is cheap and masked) and left out of silent frames.

The detector's statistic for a cell is its log magnitude minus the local envelope (a moving
average across frequency), clipped. Embedding is *informed*: for every (block, bit) group it
measures that statistic on the marked signal and raises the group's gain until the mean
reaches a margin, so the host's own interference is cancelled rather than left as noise
(improved spread spectrum); a few passes settle it. The mark is synthesised at 16 kHz,
upsampled and added to the original-rate signal, so resampling or codecs at 44.1/48 kHz
leave it in place.

Detection resamples to 16 kHz, folds the statistics of all frames onto one block (sum by
frame position modulo the block length), and searches the block offset in frame steps and
the sub-frame alignment in quarter hops, keeping the candidate with the largest total
squared soft value. Soft values are per-bit t-statistics: correlation over all repeats
divided by the residual spread, so unmarked audio or a wrong key gives about N(0, 1)
noise and a marked file gives values whose sign is the bit. Error correction and the final
decision are the caller's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from math import gcd
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

RATE = 16000  # internal analysis rate (Hz); the mark lives below its Nyquist frequency
_DOMAIN = b"dhf/audio-watermark/v1\x00"  # separates this pattern from other uses of the key
_CHUNK = 2048  # STFT frames transformed at a time (bounds memory on long files)


@dataclass(frozen=True)
class AudioWatermarkOptions:
    n_fft: int = 1024  # STFT frame length at 16 kHz (64 ms)
    hop: int = 512  # STFT hop (half a frame; sqrt-Hann windows overlap-add to one)
    low_hz: float = 500.0  # lowest frequency carrying the mark
    high_hz: float = 6000.0  # highest frequency carrying the mark
    block_frames: int = 80  # frames per payload repetition (80 x 32 ms = 2.56 s)
    margin: float = 0.08  # mean log-magnitude statistic every (block, bit) group must reach
    max_gain: float = 0.4  # cap on a group's log-magnitude gain
    iterations: int = 5  # informed-embedding passes (measure, then correct the gains)
    shape: float = 1.0  # exponent weighting cells below their envelope more (0 = uniform)
    shape_cap: float = 3.0  # bounds of that weight: [1 / cap, cap]
    smooth_bins: int = 9  # width of the moving average giving the local envelope (bins)
    clip: float = 1.0  # the per-cell statistic is clipped to +/- this (robust to outliers)
    floor_db: float = -40.0  # magnitude floor below each frame's mean power, before the log
    gate_db: float = 35.0  # frames this far below the loud (95th percentile) ones are skipped
    shifts: int = 4  # sub-hop alignments tried by the detector (hop / shifts samples apart)


@dataclass(frozen=True)
class _Pattern:
    bit: npt.NDArray[Any]  # (block_frames, band bins): payload bit carried by each cell
    sign: npt.NDArray[Any]  # (block_frames, band bins): +/-1 chip of each cell
    counts: npt.NDArray[Any]  # (n_bits,): cells per bit in one block


def embed(
    samples: npt.NDArray[Any],
    sample_rate: int,
    bits: npt.NDArray[Any],
    key: bytes,
    options: AudioWatermarkOptions | None = None,
) -> npt.NDArray[np.float32]:
    """Return ``samples`` (float32 mono in [-1, 1]) carrying ``bits``, same length and rate."""
    opts = _check_options(options or AudioWatermarkOptions())
    x = _check_samples(samples, sample_rate)
    payload = _check_bits(bits)
    pattern = _pattern(key, len(payload), opts)
    mark16 = _mark_16k(_resample(x, sample_rate, RATE), payload, pattern, opts)
    mark = _resample(mark16, RATE, sample_rate)
    mark = np.pad(mark, (0, max(0, len(x) - len(mark))))[: len(x)]
    marked: npt.NDArray[np.float32] = np.clip(x + mark, -1.0, 1.0).astype(np.float32)
    return marked


def detect(
    samples: npt.NDArray[Any],
    sample_rate: int,
    n_bits: int,
    key: bytes,
    options: AudioWatermarkOptions | None = None,
) -> npt.NDArray[Any]:
    """Soft estimates (float64, ``n_bits``) of the payload: sign > 0 means 1, size confidence."""
    opts = _check_options(options or AudioWatermarkOptions())
    y16 = _resample(_check_samples(samples, sample_rate), sample_rate, RATE)
    pattern = _pattern(key, n_bits, opts)
    index, signs = _rolled(pattern, n_bits)
    best_score, best = -1.0, np.zeros(n_bits)
    for k in range(opts.shifts):
        folded = _fold(y16[k * opts.hop // opts.shifts :], opts)
        if folded is None:
            continue
        soft = _soft_per_offset(folded, index, signs, pattern.counts)
        scores = np.sum(soft**2, axis=1)
        i = int(np.argmax(scores))
        if scores[i] > best_score:
            best_score, best = float(scores[i]), soft[i]
    return best


# -- validation ---------------------------------------------------------------------------


def _check_samples(samples: npt.NDArray[Any], sample_rate: int) -> npt.NDArray[Any]:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError("samples must be mono (1-D)")
    if sample_rate < RATE:
        raise ValueError(f"sample_rate must be at least {RATE} Hz")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite")
    return x


def _check_options(opts: AudioWatermarkOptions) -> AudioWatermarkOptions:
    lo, hi = _band(opts)
    if opts.hop <= 0 or opts.n_fft % opts.hop or not 0 < lo < hi <= opts.n_fft // 2:
        raise ValueError("options: need hop dividing n_fft and 0 < low_hz < high_hz <= 8 kHz")
    if opts.block_frames < 1 or opts.shifts < 1 or opts.smooth_bins < 1:
        raise ValueError("options: block_frames, shifts and smooth_bins must be positive")
    return opts


def _check_bits(bits: npt.NDArray[Any]) -> npt.NDArray[Any]:
    b = np.asarray(bits)
    if b.ndim != 1 or len(b) == 0 or not np.all((b == 0) | (b == 1)):
        raise ValueError("bits must be a non-empty 1-D array of 0/1")
    return b.astype(np.int64)


# -- signal plumbing -----------------------------------------------------------------------


def _resample(x: npt.NDArray[Any], rate_in: int, rate_out: int) -> npt.NDArray[np.float64]:
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float64)
    g = gcd(rate_in, rate_out)
    resampled: npt.NDArray[np.float64] = resample_poly(
        np.asarray(x, dtype=np.float64), rate_out // g, rate_in // g
    )
    return resampled


def _band(opts: AudioWatermarkOptions) -> tuple[int, int]:
    width = RATE / opts.n_fft
    return int(round(opts.low_hz / width)), int(round(opts.high_hz / width))


def _window(n: int) -> npt.NDArray[np.float64]:
    window: npt.NDArray[np.float64] = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n))
    return window


def _stft_band(x: npt.NDArray[Any], opts: AudioWatermarkOptions) -> npt.NDArray[Any]:
    """Complex STFT of ``x`` restricted to the mark band: (frames, band bins)."""
    n_frames = 1 + (len(x) - opts.n_fft) // opts.hop if len(x) >= opts.n_fft else 0
    lo, hi = _band(opts)
    frames = np.lib.stride_tricks.sliding_window_view(x, opts.n_fft)[:: opts.hop][:n_frames]
    out = np.empty((n_frames, hi - lo), dtype=complex)
    for i in range(0, n_frames, _CHUNK):  # in chunks: full spectra of long files are large
        chunk = frames[i : i + _CHUNK] * _window(opts.n_fft)
        out[i : i + _CHUNK] = np.fft.rfft(chunk, axis=1)[:, lo:hi]
    return out


def _istft_band(
    band: npt.NDArray[Any], length: int, opts: AudioWatermarkOptions
) -> npt.NDArray[Any]:
    """Overlap-add synthesis of a band-limited STFT (zeros outside the band)."""
    lo, hi = _band(opts)
    step = opts.n_fft // opts.hop
    out = np.zeros(max(length, (len(band) - 1) * opts.hop + opts.n_fft))
    for i in range(0, len(band), _CHUNK):
        spec = np.zeros((len(band[i : i + _CHUNK]), opts.n_fft // 2 + 1), dtype=complex)
        spec[:, lo:hi] = band[i : i + _CHUNK]
        frames = np.fft.irfft(spec, opts.n_fft, axis=1) * _window(opts.n_fft)
        for phase in range(step):  # frames of one phase do not overlap: add them as one run
            run = frames[phase::step].reshape(-1)
            start = (i + phase) * opts.hop
            out[start : start + len(run)] += run
    return out[:length]


def _features(
    band: npt.NDArray[Any], opts: AudioWatermarkOptions
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Log magnitude minus its local envelope (frames, bins), and the frame energy gate."""
    power = np.abs(band) ** 2
    energy = power.mean(axis=1)
    if len(energy) == 0:
        return np.zeros(band.shape), np.zeros(0, dtype=bool)
    threshold = max(float(np.percentile(energy, 95)) * 10 ** (-opts.gate_db / 10), 1e-12)
    floor = energy[:, None] * 10 ** (opts.floor_db / 10) + 1e-20
    log_mag = 0.5 * np.log(power + floor)
    return log_mag - _moving_average(log_mag, opts.smooth_bins), energy > threshold


def _moving_average(a: npt.NDArray[Any], width: int) -> npt.NDArray[np.floating[Any]]:
    half = width // 2
    padded = np.pad(a, ((0, 0), (half, half)), mode="edge")
    csum = np.cumsum(np.pad(padded, ((0, 0), (1, 0))), axis=1)
    average: npt.NDArray[np.floating[Any]] = (
        csum[:, 2 * half + 1 :] - csum[:, : -2 * half - 1]
    ) / (2 * half + 1)
    return average


def _statistic(
    band: npt.NDArray[Any], opts: AudioWatermarkOptions
) -> npt.NDArray[np.floating[Any]]:
    """The detector's per-cell value: clipped envelope-relative log magnitude, 0 when gated."""
    dev, gate = _features(band, opts)
    stat: npt.NDArray[np.floating[Any]] = np.clip(dev, -opts.clip, opts.clip) * gate[:, None]
    return stat


# -- key pattern ---------------------------------------------------------------------------


def _pattern(key: bytes, n_bits: int, opts: AudioWatermarkOptions) -> _Pattern:
    if not isinstance(key, bytes | bytearray) or len(key) == 0:
        raise ValueError("key must be non-empty bytes")
    lo, hi = _band(opts)
    cells = opts.block_frames * (hi - lo)
    if not 1 <= n_bits <= cells // 16:
        raise ValueError(f"n_bits must be between 1 and {cells // 16}")
    seed = int.from_bytes(hashlib.sha256(_DOMAIN + bytes(key)).digest(), "big")
    rng = np.random.default_rng(seed)
    bit = (rng.permutation(cells) % n_bits).reshape(opts.block_frames, hi - lo)
    sign = rng.integers(0, 2, bit.shape) * 2.0 - 1.0
    return _Pattern(bit, sign, np.bincount(bit.ravel(), minlength=n_bits).astype(float))


# -- embedding -----------------------------------------------------------------------------


def _mark_16k(
    x16: npt.NDArray[Any], payload: npt.NDArray[Any], pattern: _Pattern, opts: AudioWatermarkOptions
) -> npt.NDArray[Any]:
    """The additive watermark at 16 kHz, with gains set by informed (closed-loop) embedding."""
    host = _stft_band(x16, opts)
    if len(host) == 0:
        return np.zeros(len(x16))
    position = np.arange(len(host)) % opts.block_frames
    bit = pattern.bit[position]
    chip = pattern.sign[position] * (2.0 * payload[bit] - 1.0)  # +1 where the cell goes up
    group = (np.arange(len(host)) // opts.block_frames)[:, None] * len(payload) + bit
    n_groups = int(group.max()) + 1
    dev, gate = _features(host, opts)
    weight = np.clip(np.exp(-opts.shape * dev), 1 / opts.shape_cap, opts.shape_cap)
    weight *= gate[:, None]
    gain, mark = np.zeros(n_groups), np.zeros(len(x16))
    achieved = _group_means(np.clip(dev, -opts.clip, opts.clip) * chip, gate, group, n_groups)
    for i in range(opts.iterations):
        gain = np.clip(gain + opts.margin - achieved, 0.0, opts.max_gain)
        mark = _istft_band(host * np.expm1(chip * weight * gain[group]), len(x16), opts)
        if i + 1 < opts.iterations:
            stat = _statistic(_stft_band(x16 + mark, opts), opts)
            achieved = _group_means(stat * chip, gate, group, n_groups)
    return mark


def _group_means(
    values: npt.NDArray[Any], gate: npt.NDArray[Any], group: npt.NDArray[Any], n_groups: int
) -> npt.NDArray[np.float64]:
    sums = np.bincount(group[gate].ravel(), values[gate].ravel(), n_groups)
    counts = np.bincount(group[gate].ravel(), None, n_groups)
    means: npt.NDArray[np.float64] = sums / np.maximum(counts, 1)
    return means


# -- detection -----------------------------------------------------------------------------


def _fold(
    y16: npt.NDArray[Any], opts: AudioWatermarkOptions
) -> npt.NDArray[np.floating[Any]] | None:
    """Statistics of all frames summed by frame position modulo the block: (block, bins)."""
    stat = _statistic(_stft_band(y16, opts), opts)
    if len(stat) == 0:
        return None
    pad = (-len(stat)) % opts.block_frames
    stat = np.pad(stat, ((0, pad), (0, 0)))
    folded: npt.NDArray[np.floating[Any]] = stat.reshape(-1, opts.block_frames, stat.shape[1]).sum(
        axis=0
    )
    return folded


def _rolled(pattern: _Pattern, n_bits: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """For every block offset o, frame t meets pattern row (t + o) mod block: flat indices."""
    p = len(pattern.bit)
    rows = (np.arange(p)[:, None] + np.arange(p)[None, :]) % p  # (offset, frame)
    index = pattern.bit[rows] + (np.arange(p) * n_bits)[:, None, None]
    return index.ravel(), pattern.sign[rows]


def _soft_per_offset(
    folded: npt.NDArray[Any],
    index: npt.NDArray[Any],
    signs: npt.NDArray[Any],
    counts: npt.NDArray[Any],
) -> npt.NDArray[np.float64]:
    """Per-offset, per-bit t-statistics (offsets, n_bits)."""
    p, n_bits = len(folded), len(counts)
    corr = np.bincount(index, (signs * folded[None]).ravel(), p * n_bits).reshape(p, n_bits)
    residual = np.sum(folded**2) - np.sum(corr**2 / counts, axis=1)  # per offset
    sigma = np.sqrt(np.maximum(residual, 0.0) / folded.size + 1e-20)
    t: npt.NDArray[np.float64] = corr / (sigma[:, None] * np.sqrt(counts))
    return t
