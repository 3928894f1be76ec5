"""Check one recorded take against the sentence it should say.

Each problem has a reason code and a message that tells the speaker what to do. Checks
run in a fixed order and stop at the first failure (a silent take is not also "wrong words").
Thresholds were measured on CMU ARCTIC slt (clean studio speech: SNR ~38-45 dB). Wrong
words: Whisper base WER against the prompt is 0.0-0.40 (median 0) for the right sentence and
0.83-2.2 for another one (20 held-out takes each); pocketsphinx's forced-alignment score,
used before, overlapped (right 0.59-0.76, another sentence up to 0.48).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from compliance.media import audio

from .. import asr
from ..bundled import word_error_rate
from .speech import RATE, speech_segments
from .text import words

MESSAGES = {
    "unreadable": "We could not read this recording. Record again in your browser, or upload "
    "a WAV, WebM, OGG or MP3 file.",
    "too_short": "The recording is too short for this sentence. Read the whole sentence, "
    "then stop recording.",
    "too_long": "The recording is much longer than this sentence needs. Start reading right "
    "after you press record and stop when you finish.",
    "too_quiet": "The recording is too quiet. Move closer to the microphone or raise its "
    "input volume, then record again.",
    "clipped": "The recording is distorted (too loud). Move a little away from the "
    "microphone or lower its input volume, then record again.",
    "no_speech": "We could not hear any speech. Check that the right microphone is "
    "selected and record again.",
    "noisy": "There is too much background noise. Record in a quieter room, away from fans "
    "and traffic.",
    "wrong_words": "The recording does not match the sentence on screen. Read the sentence "
    "exactly as written and record again.",
}


@dataclass(frozen=True)
class Limits:
    min_peak: float = 0.03  # peak amplitude below this (-30 dBFS) is too quiet
    min_speech_dbfs: float = -42.0  # RMS of the speech regions
    max_clipped: float = 0.002  # fraction of samples at full scale
    min_speech_s: float = 0.3  # silero VAD speech below this: no speech
    min_snr_db: float = 15.0  # speech vs pause energy
    max_wer: float = 0.6  # Whisper base word error rate against the prompt
    min_s_per_word: float = 0.12  # speech shorter than words * this is too short
    max_s_per_word: float = 1.5  # a take longer than words * this + 4 s is too long


@dataclass
class Verdict:
    ok: bool
    reason: str | None = None  # a code of MESSAGES
    message: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fail(reason: str, info: dict[str, Any]) -> Verdict:
    return Verdict(False, reason, MESSAGES[reason], info)


def _dbfs(x: npt.NDArray[Any]) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x))) + 1e-9)) if len(x) else -120.0


def snr_db(samples: npt.NDArray[Any], segments: list[tuple[int, int]]) -> float:
    """Speech energy over pause energy (20 ms frames): pauses are the VAD's gaps, else the
    quietest tenth of the frames."""
    hop = RATE // 50
    n = len(samples) // hop
    energy = np.square(samples[: n * hop].reshape(n, hop)).mean(axis=1) + 1e-12
    speech = np.zeros(n, bool)
    for start, end in segments:
        speech[start // hop : end // hop + 1] = True
    pause = energy[~speech] if (~speech).sum() >= 10 else np.sort(energy)[: max(n // 10, 1)]
    loud = energy[speech] if speech.any() else np.sort(energy)[-max(n // 10, 1) :]
    return float(10 * np.log10(np.median(loud) / np.median(pause)))


def check_samples(samples: npt.NDArray[Any], text: str, limits: Limits = Limits()) -> Verdict:
    """Validate 16 kHz float mono ``samples`` as a reading of ``text``."""
    n_words = max(len(words(text)), 1)
    info: dict[str, Any] = {"duration_s": round(len(samples) / RATE, 3)}
    if len(samples) < RATE // 2:
        return _fail("too_short", info)
    peak = float(np.abs(samples).max())
    info["peak"] = round(peak, 4)
    if len(samples) / RATE > n_words * limits.max_s_per_word + 4.0:
        return _fail("too_long", info)
    clipped = float(np.mean(np.abs(samples) >= 0.99 * max(peak, 0.5)))
    info["clipped_fraction"] = round(clipped, 5)
    if peak >= 0.5 and clipped > limits.max_clipped:
        return _fail("clipped", info)
    segments = speech_segments(samples)
    speech_s = sum(e - s for s, e in segments) / RATE
    info["speech_s"] = round(speech_s, 3)
    if speech_s < limits.min_speech_s:
        return _fail("no_speech", info)
    if peak < limits.min_peak:
        return _fail("too_quiet", info)
    speech = np.concatenate([samples[s:e] for s, e in segments])
    info["speech_dbfs"] = round(_dbfs(speech), 1)
    if info["speech_dbfs"] < limits.min_speech_dbfs:
        return _fail("too_quiet", info)
    if speech_s < n_words * limits.min_s_per_word:
        return _fail("too_short", info)
    info["snr_db"] = round(snr_db(samples, segments), 1)
    if info["snr_db"] < limits.min_snr_db:
        return _fail("noisy", info)
    heard = asr.transcribe(samples, RATE)
    info["heard"] = heard.text.strip()[:500]
    said = word_error_rate(asr.spoken_words(text), asr.spoken_words(heard.text))
    info["wer"] = round(said, 3)
    if info["wer"] > limits.max_wer:
        return _fail("wrong_words", info)
    return Verdict(True, info=info)


def check_file(path: str | os.PathLike[str], text: str, limits: Limits = Limits()) -> Verdict:
    """Validate a recording file (any container PyAV reads) as a reading of ``text``."""
    try:
        samples = audio(path, RATE)
    except Exception as exc:  # PyAV raises many types for bad input; all mean unreadable
        return _fail("unreadable", {"error": type(exc).__name__})
    if not len(samples):
        return _fail("unreadable", {"error": "no audio track"})
    return check_samples(samples, text, limits)
