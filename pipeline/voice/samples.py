"""Hear it before you use it: sentences the fit held back, said three ways.

For the first ``SAMPLES`` sentences that training held back from the network's fit (see
``heldback``), write the speaker's own take, the cloned voice and the base voice as WAV
files, with the figures of the quality protocol per clip: Whisper base WER against the
sentence, and speaker similarity (mean Resemblyzer cosine to the speaker's OTHER
held-back takes, as in ``dhf eval voice``). The files are plain audio: the web app stamps
the synthetic ones (AI notice + watermark) and stores them encrypted before anyone hears
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from compliance.media import audio, resample, write_wav

from .features import OUTPUT_RATE, RATE, base_voice, normalise_loudness, to_output_rate
from .model import VoiceModel
from .synthesize import render_sentence

SAMPLES = 3  # sentences the quality report plays
KINDS = ("real", "clone", "base")  # the speaker's own take, the cloned voice, the base voice
HOLD_EVERY = 20  # the fit holds back the first sentence in every 20


def heldback(n: int) -> list[int]:
    """Indices of the sentences the fit holds back (validation loss, samples): the first in
    every 20 (0, 20, 40, ...); with fewer than 60 sentences they are spaced (at least 5
    apart) so that ``SAMPLES`` are held back where there are enough. None under 5."""
    if n < 5:
        return []
    step = HOLD_EVERY if n >= HOLD_EVERY * SAMPLES else max(5, n // SAMPLES)
    return list(range(0, n, step))[: max(SAMPLES, -(-n // HOLD_EVERY))]


def _similarities(
    clips: list[npt.NDArray[Any]], refs: list[npt.NDArray[Any]], own: int
) -> float | None:
    """Mean cosine of ``clips[own]``'s embedding to every reference but the same sentence's."""
    others = [r for j, r in enumerate(refs) if j != own]
    if not others:
        return None
    return round(float(np.mean([float(clips[own] @ r) for r in others])), 3)


def write(
    model: VoiceModel,
    takes: Sequence[tuple[str, str | Path]],
    indices: Sequence[int],
    out: Path,
) -> list[dict[str, Any]]:
    """Write ``<k>-real.wav``, ``<k>-clone.wav``, ``<k>-base.wav`` into ``out`` for the first
    ``SAMPLES`` of ``indices`` (``takes`` holds (sentence, wav path) in training order) and
    return one entry per sample: sentence, files (relative to ``out``'s parent), rates,
    Whisper WER and speaker similarity per clip."""
    from .evaluate import _embed, _wer  # the eval's own judges (imported late: no cycle)

    held = [takes[i] for i in indices]
    if not held:
        return []
    out.mkdir(parents=True, exist_ok=True)
    real = [audio(Path(wav), RATE) for _, wav in held]
    refs = [_embed(x) for x in real]
    entries = []
    for k, (sentence, _) in enumerate(held[:SAMPLES]):
        clips = {
            "real": (normalise_loudness(real[k]), RATE),
            "clone": (render_sentence(model, sentence), OUTPUT_RATE),
            "base": (normalise_loudness(to_output_rate(base_voice(sentence))), OUTPUT_RATE),
        }
        files, wer, sim = {}, {}, {}
        for kind, (samples, rate) in clips.items():
            name = f"{k}-{kind}.wav"
            write_wav(out / name, samples, rate)
            files[kind] = f"{out.name}/{name}"
            judged = samples if rate == RATE else resample(samples, rate, RATE)
            wer[kind] = round(_wer(judged, sentence), 3)
            embeddings = refs if kind == "real" else [_embed(judged)] * len(refs)
            sim[kind] = _similarities(embeddings, refs, k)
        entries.append(
            {
                "sentence": sentence,
                "files": files,
                "rate_hz": {kind: rate for kind, (_, rate) in clips.items()},
                "wer": wer,
                "similarity": sim,
            }
        )
    return entries


def similarity_gain(entries: list[dict[str, Any]]) -> float | None:
    """How far the clone moved from the base voice (0) to the speaker (1) on these samples."""
    sims = [e["similarity"] for e in entries if None not in e["similarity"].values()]
    if not sims:
        return None
    mean = {k: float(np.mean([s[k] for s in sims])) for k in KINDS}
    span = mean["real"] - mean["base"]
    return round((mean["clone"] - mean["base"]) / span, 3) if abs(span) > 1e-6 else None
