"""Text to speech in a person's cloned voice, sentence by sentence.

The base voice says each sentence at the speaker's speaking rate; the model moves its
WORLD frames into the speaker's timbre and intonation; WORLD resynthesises at the takes'
16 kHz; the result is resampled to 22.05 kHz (the band above 8 kHz stays empty: the takes
carry none) and loudness-normalised. ``sentences()`` yields per sentence (long scripts
stream); ``synthesize()`` joins them with short pauses.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from .features import (
    OUTPUT_RATE,
    analyse,
    base_voice,
    normalise_loudness,
    synthesise,
    to_output_rate,
)
from .model import VoiceModel

PAUSE_S = 0.25  # silence between sentences
_SPLIT = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SPLIT.split(text.strip()) if s.strip()]


def convert_sentence(model: VoiceModel, sentence: str) -> npt.NDArray[Any]:
    """One sentence in the cloned voice (float32, 16 kHz, not yet loudness-normalised)."""
    world = analyse(base_voice(sentence, model.length_scale), model.settings.order)
    return synthesise(model.convert(world))


def render_sentence(model: VoiceModel, sentence: str) -> npt.NDArray[Any]:
    """One sentence as the product delivers it: ``OUTPUT_RATE``, loudness-normalised."""
    return normalise_loudness(to_output_rate(convert_sentence(model, sentence)))


def sentences(model: VoiceModel, text: str) -> Iterator[npt.NDArray[Any]]:
    """Each sentence of ``text`` as loudness-normalised samples at ``OUTPUT_RATE``."""
    for sentence in split_sentences(text):
        yield render_sentence(model, sentence)


def synthesize(
    model: VoiceModel | str | os.PathLike[str], text: str
) -> tuple[npt.NDArray[Any], int]:
    """``text`` in the cloned voice: (float32 samples, sample rate)."""
    if not isinstance(model, VoiceModel):
        model = VoiceModel.load(model)
    pause = np.zeros(int(PAUSE_S * OUTPUT_RATE), np.float32)
    parts = [p for s in sentences(model, text) for p in (s, pause)][:-1]
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), OUTPUT_RATE
