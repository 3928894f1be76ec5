"""compliance.audio_watermark on real speech: round trips, codecs, cuts, and the null case.

Signals are real recordings from ../shared/data: CMU Arctic (slt) utterances joined at
16 kHz, and the 44.1 kHz soundtracks of GRID clips decoded with the bundled ffmpeg.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from scipy.signal import resample_poly

from compliance.audio_watermark import detect, embed

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
KEY = b"test-key-audio-watermark"
N_BITS = 128


def _need_data() -> None:
    if not (DATA / "voice_slt" / "train").is_dir() or not (DATA / "grid_s1" / "train").is_dir():
        pytest.skip(f"shared data not found at {DATA}")


def _speech(start: int, count: int) -> tuple[np.ndarray, int]:
    """``count`` slt utterances (16-bit, 16 kHz) joined into one float32 signal."""
    _need_data()
    parts = []
    for path in sorted((DATA / "voice_slt" / "train").glob("*.wav"))[start : start + count]:
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        parts.append(pcm.astype(np.float32) / 32768.0)
    return np.concatenate(parts), 16000


def _ffmpeg_decode(path: Path, rate: int) -> np.ndarray:
    cmd = [FFMPEG, "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(rate)]
    out = subprocess.run([*cmd, "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.float32)


def _grid(start: int, count: int, rate: int = 44100) -> tuple[np.ndarray, int]:
    """Soundtracks of ``count`` GRID clips joined, peak-normalised to 0.9 (mono downmix)."""
    _need_data()
    clips = sorted((DATA / "grid_s1" / "train").glob("*.mpg"))[start : start + count]
    audio = np.concatenate([_ffmpeg_decode(p, rate) for p in clips])
    return (audio * (0.9 / np.max(np.abs(audio)))).astype(np.float32), rate


def _bits(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, N_BITS).astype(np.uint8)


def _agreement(soft: np.ndarray, bits: np.ndarray) -> float:
    return float(np.mean((soft > 0) == (bits == 1)))


def _snr_db(clean: np.ndarray, marked: np.ndarray) -> float:
    noise = marked.astype(np.float64) - clean
    return float(10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(noise**2)))


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    return _speech(0, 8)  # ~24 s


@pytest.fixture(scope="module")
def grid_audio() -> tuple[np.ndarray, int]:
    return _grid(0, 7)  # ~21 s at 44.1 kHz


@pytest.fixture(scope="module")
def marked_speech(speech: tuple[np.ndarray, int]) -> tuple[np.ndarray, np.ndarray]:
    x, sr = speech
    bits = _bits(1)
    return embed(x, sr, bits, KEY), bits


def test_clean_round_trip_is_exact_and_quiet(speech, marked_speech):
    x, sr = speech
    y, bits = marked_speech
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y)) <= 1.0
    assert _snr_db(x, y) >= 25.0
    soft = detect(y, sr, N_BITS, KEY)
    assert soft.dtype == np.float64 and soft.shape == (N_BITS,)
    assert _agreement(soft, bits) == 1.0
    assert np.mean(soft * (2.0 * bits - 1)) > 4.0  # confident, in null-noise units


def test_aac_64k_round_trip(grid_audio, tmp_path):
    x, sr = grid_audio
    bits = _bits(2)
    y = embed(x, sr, bits, KEY)
    assert _snr_db(x, y) >= 25.0
    src, m4a = tmp_path / "marked.wav", tmp_path / "marked.m4a"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(y, -1, 32767 / 32768) * 32768).astype("<i2").tobytes())
    enc = [FFMPEG, "-v", "error", "-y", "-i", str(src), "-c:a", "aac", "-b:a", "64k", str(m4a)]
    subprocess.run(enc, check=True)
    decoded = _ffmpeg_decode(m4a, sr)
    assert abs(len(decoded) - len(y)) < sr // 10  # the codec kept the length
    assert _agreement(detect(decoded, sr, N_BITS, KEY), bits) >= 0.95


def test_first_two_seconds_trimmed(speech, marked_speech):
    _, sr = speech
    y, bits = marked_speech
    assert _agreement(detect(y[2 * sr :], sr, N_BITS, KEY), bits) >= 0.95


def test_ten_second_excerpt_at_an_odd_offset(grid_audio):
    x, sr = grid_audio
    bits = _bits(3)
    y = embed(x, sr, bits, KEY)
    start = len(y) // 2 - 5 * sr + 1234  # not on any frame boundary
    assert _agreement(detect(y[start : start + 10 * sr], sr, N_BITS, KEY), bits) >= 0.95


def test_resampled_to_48k(speech, marked_speech):
    _, sr = speech
    y, bits = marked_speech
    y48 = resample_poly(y.astype(np.float64), 3, 1).astype(np.float32)
    assert _agreement(detect(y48, 48000, N_BITS, KEY), bits) >= 0.95


@pytest.mark.parametrize(
    "source",
    [("speech", 20, 8), ("speech", 50, 8), ("speech", 80, 8), ("grid", 20, 7), ("grid", 40, 7)],
)
def test_unmarked_audio_and_wrong_key_read_as_noise(source):
    kind, start, count = source
    x, sr = _speech(start, count) if kind == "speech" else _grid(start, count)
    bits = _bits(start)
    y = embed(x, sr, bits, KEY)
    marked = detect(y, sr, N_BITS, KEY)
    unmarked = detect(x, sr, N_BITS, KEY)
    wrong_key = detect(y, sr, N_BITS, b"some other key")
    assert _agreement(marked, bits) == 1.0
    for soft in (unmarked, wrong_key):
        assert 0.30 <= _agreement(soft, bits) <= 0.70
        assert abs(float(np.mean(soft))) < 0.5  # zero-mean ...
        assert float(np.mean(np.abs(soft))) < 1.5  # ... noise of about unit scale
    assert np.mean(np.abs(marked)) > 3 * np.mean(np.abs(unmarked))


def test_rejects_inputs_it_cannot_mark(speech):
    x, sr = speech
    bits = _bits(4)
    low = resample_poly(x[: 5 * sr].astype(np.float64), 1, 2).astype(np.float32)
    with pytest.raises(ValueError, match="sample_rate"):
        embed(low, 8000, bits, KEY)
    with pytest.raises(ValueError, match="mono"):
        embed(np.stack([x, x]), sr, bits, KEY)
    with pytest.raises(ValueError, match="bits"):
        embed(x, sr, bits * 2, KEY)
    with pytest.raises(ValueError, match="key"):
        detect(x, sr, N_BITS, b"")
