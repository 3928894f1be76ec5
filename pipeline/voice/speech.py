"""Speech analysis shared by validation and training: VAD and forced alignment.

Everything runs at 16 kHz on float32 mono in [-1, 1]. Silero VAD runs its bundled ONNX
model; pocketsphinx does forced phone alignment (``Decoder(bestpath=False)``) with 10 ms
frames.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .text import pronounce, words

RATE = 16000  # every analysis here runs at 16 kHz
FRAME_S = 0.01  # pocketsphinx frame


@functools.cache
def _vad_model() -> Any:
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=True)


def speech_segments(samples: npt.NDArray[Any]) -> list[tuple[int, int]]:
    """Silero VAD speech regions as (start, end) sample indices."""
    import torch
    from silero_vad import get_speech_timestamps

    if len(samples) < RATE // 10:
        return []
    stamps = get_speech_timestamps(
        torch.from_numpy(np.ascontiguousarray(samples, np.float32)),
        _vad_model(),
        sampling_rate=RATE,
    )
    return [(int(s["start"]), int(s["end"])) for s in stamps]


def _pcm(samples: npt.NDArray[Any]) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


_LOCK = threading.Lock()  # one decoder per process, used one call at a time


@functools.cache
def _decoder() -> Any:
    from pocketsphinx import Decoder

    return Decoder(loglevel="FATAL", bestpath=False)


@dataclass(frozen=True)
class Alignment:
    phones: list[tuple[str, float, float]]  # (CMU phone or SIL, start s, end s)
    words: list[tuple[str, float, float]]
    score: float  # pocketsphinx's path score for the text (about 0.6-0.8 right, < 0.35 wrong)

    @property
    def speech(self) -> tuple[float, float]:
        """Start of the first and end of the last non-silent phone (seconds)."""
        spoken = [p for p in self.phones if p[0] != "SIL"]
        return (spoken[0][1], spoken[-1][2]) if spoken else (0.0, 0.0)

    @property
    def phone_seconds(self) -> float:
        """Time spent in phones, pauses excluded: the speaking-rate denominator."""
        return sum(e - s for name, s, e in self.phones if name != "SIL")

    def shifted(self, seconds: float) -> Alignment:
        """The same alignment with every time moved by ``seconds``."""

        def move(spans: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
            return [(n, a + seconds, b + seconds) for n, a, b in spans]

        return Alignment(move(self.phones), move(self.words), self.score)

    def word_phones(self) -> list[list[tuple[str, float, float]]]:
        """The phones inside each spoken word (silences and fillers left out)."""
        spoken = [w for w in self.words if not w[0].startswith(("<", "["))]
        eps = FRAME_S / 2
        return [
            [p for p in self.phones if p[1] >= a - eps and p[2] <= b + eps and p[0] != "SIL"]
            for _, a, b in spoken
        ]

    @property
    def phone_count(self) -> int:
        return sum(1 for p in self.phones if p[0] != "SIL")


def align(samples: npt.NDArray[Any], text: str) -> Alignment | None:
    """Force-align ``text`` to 16 kHz speech; None when pocketsphinx finds no path."""
    with _LOCK:
        return _align(_decoder(), samples, text)


def _align(decoder: Any, samples: npt.NDArray[Any], text: str) -> Alignment | None:
    spoken = []
    for w in words(text):
        pron = pronounce(w)
        if pron is None:
            continue
        if decoder.lookup_word(w) is None:
            decoder.add_word(w, " ".join(pron), False)
        spoken.append(w)
    if not spoken:
        return None
    try:
        decoder.set_align_text(" ".join(spoken))
        decoder.start_utt()
        decoder.process_raw(_pcm(samples), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        if hyp is None:
            return None
        decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(_pcm(samples), full_utt=True)
        decoder.end_utt()
        result = decoder.get_alignment()
    except RuntimeError:
        return None
    if result is None:
        return None
    return Alignment(_spans(result.phones()), _spans(result.words()), float(hyp.score))


def _spans(entries: Any) -> list[tuple[str, float, float]]:
    return [(e.name, e.start * FRAME_S, (e.start + e.duration) * FRAME_S) for e in entries]
