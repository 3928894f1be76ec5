"""The voice half of the quality protocol (../shared/DESIGN.md): train on ``train/``, say
every ``heldout/`` sentence in the cloned voice, and score it against the real recording.

Speaker similarity is the mean Resemblyzer cosine over pairs (generated sentence i, real
held-out sentence j != i); the floor is the same figure for the untouched base voice and
the ceiling for real-vs-real pairs. F0 is pooled over voiced frames (harvest); "within"
spread is the mean per-sentence std of log-F0 (how much the intonation moves).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from compliance.media import audio, resample

from .. import asr
from ..bundled import load_voice_encoder, transcribe, word_error_rate
from .features import (
    OUTPUT_RATE,
    RATE,
    analyse,
    base_voice,
    dtw_path,
    mel_cepstral_distortion,
)
from .model import VoiceModel
from .pitch import crepe_f0
from .speech import speech_segments
from .synthesize import render_sentence
from .text import words
from .train import log, takes_in, train

TARGETS = {  # issue 17
    "similarity_gain_min": 0.85,
    "wer_over_base_max": 0.02,  # Whisper WER of the clone over the base voice's
    "wer_max": 0.08,
    "f0_spread_ratio": (0.8, 1.25),
    "f0_mean_rel_error_max": 0.10,
    "train_s_max": 900,  # 15 minutes on the cpu profile
    "rtf_max": 0.5,
    "output_rate_min": 22050,
}


def _embed(samples: npt.NDArray[Any]) -> npt.NDArray[Any]:
    from resemblyzer import preprocess_wav

    return load_voice_encoder().embed_utterance(preprocess_wav(samples, source_sr=RATE))


def _similarity(a: list[npt.NDArray[Any]], b: list[npt.NDArray[Any]]) -> float:
    """Mean cosine over pairs (i, j), i != j (embeddings are unit length)."""
    sims = [float(x @ y) for i, x in enumerate(a) for j, y in enumerate(b) if i != j]
    return float(np.mean(sims))


def _f0(samples_list: list[npt.NDArray[Any]], tracker: str = "crepe") -> dict[str, float]:
    """Pooled mean F0 (Hz), pooled and within-sentence spread of log-F0 (semitones), and a
    robust pooled spread (interquartile range / 1.349). ``crepe`` (the reported figure) does
    not jump octaves on WORLD-resynthesised speech; ``harvest`` (secondary) does."""
    per = []
    for samples in samples_list:
        if tracker == "crepe":
            f0 = crepe_f0(samples)
            per.append(np.log(f0[f0 > 0]))
        else:
            world = analyse(samples, 24)
            per.append(np.log(world.f0[world.voiced]))
    pooled = np.concatenate(per)
    st = 12 / np.log(2)
    return {
        "mean_hz": round(float(np.exp(pooled.mean())), 1),
        "spread_semitones": round(float(pooled.std() * st), 2),
        "within_spread_semitones": round(float(np.mean([p.std() for p in per if len(p)]) * st), 2),
        "robust_spread_semitones": round(
            float(np.subtract(*np.percentile(pooled, [75, 25])) / 1.349 * st), 2
        ),
    }


def _trimmed(samples: npt.NDArray[Any]) -> npt.NDArray[Any]:
    segments = speech_segments(samples) or [(0, len(samples))]
    return samples[segments[0][0] : segments[-1][1]]


def _mcd(generated: npt.NDArray[Any], real: npt.NDArray[Any]) -> float:
    g, r = analyse(_trimmed(generated), 40).mcep, analyse(_trimmed(real), 40).mcep
    i, j = dtw_path(g[:, 1:], r[:, 1:])
    return mel_cepstral_distortion(g[i], r[j])


def _wer(samples: npt.NDArray[Any], text: str) -> float:
    """Whisper base WER: the main intelligibility figure."""
    heard = asr.transcribe(np.clip(samples, -1, 1).astype(np.float32), RATE)
    return word_error_rate(asr.spoken_words(text), asr.spoken_words(heard.text))


def _wer_pocketsphinx(samples: npt.NDArray[Any], text: str) -> float:
    """pocketsphinx WER (secondary: it scores real read speech at 0.2-0.38)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    return word_error_rate(" ".join(words(text)), transcribe(pcm, RATE))


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def evaluate(
    train_dir: str | Path, heldout_dir: str | Path, profile: str = "cpu"
) -> dict[str, Any]:
    heldout = takes_in(heldout_dir)
    with tempfile.TemporaryDirectory(prefix="dhf-voice-") as tmp:
        began = time.perf_counter()
        checkpoint, report = train(train_dir, tmp, profile)
        train_s = time.perf_counter() - began
        model = VoiceModel.load(checkpoint)
    real, gen, base = [], [], []
    synth_s = out_s = 0.0
    for k, take in enumerate(heldout):
        log(k / len(heldout), f"held-out {take.wav.stem}")
        real.append(audio(take.wav, RATE))
        t0 = time.perf_counter()
        product = render_sentence(model, take.text)  # what a render gets: OUTPUT_RATE
        synth_s += time.perf_counter() - t0
        out_s += len(product) / OUTPUT_RATE
        gen.append(resample(product, OUTPUT_RATE, RATE))  # the judges listen at 16 kHz
        base.append(base_voice(take.text))
    return _scores(heldout, real, gen, base, report, train_s, synth_s, profile, out_s)


Signals = list[npt.NDArray[Any]]


def _scores(  # type: ignore[no-untyped-def]
    heldout,
    real: Signals,
    gen: Signals,
    base: Signals,
    report,
    train_s: float,
    synth_s: float,
    profile: str,
    out_s: float | None = None,
) -> dict[str, Any]:
    log(0.98, "scoring: speaker similarity, WER, F0, MCD")
    texts = [t.text for t in heldout]
    audio_s = out_s if out_s is not None else sum(len(g) for g in gen) / RATE
    rtf = synth_s / audio_s
    result = {
        "profile": profile,
        "sentences": {"train": report["sentences"], "heldout": len(heldout)},
        "speaker_similarity": _similarity_scores(real, gen, base),
        **_intelligibility(texts, real, gen, base),
        **_intonation(real, gen, base),
        "mcd_db": {
            "generated": round(
                float(np.mean([_mcd(x, r) for x, r in zip(gen, real, strict=True)])), 2
            ),
            "base_voice": round(
                float(np.mean([_mcd(x, r) for x, r in zip(base, real, strict=True)])), 2
            ),
        },
        "train_s": round(train_s, 1),
        "output_rate_hz": OUTPUT_RATE,
        "analysis_rate_hz": RATE,
        "synthesis": {
            "seconds": round(synth_s, 2),
            "audio_s": round(audio_s, 2),
            "rtf": round(rtf, 3),
        },
        "peak_memory_mb": _peak_mb(),
        "model": {k: report[k] for k in ("length_scale", "f0_base_hz", "f0_speaker_hz", "frames")},
        "settings": report["settings"],
    }
    result["targets"] = _targets(result, train_s, rtf)
    gain, wer = result["speaker_similarity"]["gain"], result["wer"]
    print(
        f"[voice] similarity gain {gain:.2f}, WER {wer['gen']:.2f} (base {wer['base']:.2f})",
        file=sys.stderr,
    )
    return result


def _similarity_scores(real: Signals, gen: Signals, base: Signals) -> dict[str, float]:
    """Speaker similarity to the real held-out takes, and how far the clone moved from the
    base voice (0) towards the speaker (1)."""
    emb = {k: [_embed(x) for x in v] for k, v in (("real", real), ("gen", gen), ("base", base))}
    sim = {k: _similarity(emb[k], emb["real"]) for k in ("gen", "base", "real")}
    gain = (sim["gen"] - sim["base"]) / (sim["real"] - sim["base"])
    return {
        "generated": round(sim["gen"], 4),
        "base_voice_floor": round(sim["base"], 4),
        "real_ceiling": round(sim["real"], 4),
        "gain": round(gain, 3),
    }


def _intelligibility(
    texts: list[str], real: Signals, gen: Signals, base: Signals
) -> dict[str, Any]:
    """WER of each voice against the script: Whisper base (main), pocketsphinx (secondary)."""
    voices = (("gen", gen), ("base", base), ("real", real))

    def mean(score: Any, signals: Signals) -> float:
        return round(float(np.mean([score(x, t) for x, t in zip(signals, texts, strict=True)])), 3)

    return {
        "wer": {k: mean(_wer, v) for k, v in voices},
        "wer_pocketsphinx": {k: mean(_wer_pocketsphinx, v) for k, v in voices},
    }


def _intonation(real: Signals, gen: Signals, base: Signals) -> dict[str, Any]:
    """F0 statistics (CREPE; Harvest as a cross-check) and the clone's ratios to the speaker."""
    f0 = {"generated": _f0(gen), "speaker": _f0(real), "base": _f0(base)}
    harvest = {"generated": _f0(gen, "harvest"), "speaker": _f0(real, "harvest")}

    def ratio(stats: dict[str, Any], key: str) -> float:
        return float(stats["generated"][key] / stats["speaker"][key])

    return {
        "f0": f0,
        "f0_tracker": "crepe (torchcrepe tiny, Viterbi, periodicity >= 0.5)",
        "f0_spread_ratio": round(ratio(f0, "spread_semitones"), 3),
        "f0_harvest": harvest,
        "f0_harvest_spread_ratio": round(ratio(harvest, "spread_semitones"), 3),
        "f0_within_spread_ratio": round(ratio(f0, "within_spread_semitones"), 3),
        "f0_mean_rel_error": round(abs(ratio(f0, "mean_hz") - 1), 3),
    }


def _targets(result: dict[str, Any], train_s: float, rtf: float) -> dict[str, bool]:
    """Each target of the issue, met or not (TARGETS)."""
    lo, hi = TARGETS["f0_spread_ratio"]
    wer = result["wer"]
    return {
        "similarity_gain": result["speaker_similarity"]["gain"] >= TARGETS["similarity_gain_min"],
        "wer": wer["gen"] <= min(wer["base"] + TARGETS["wer_over_base_max"], TARGETS["wer_max"]),
        "f0_spread": lo <= result["f0_spread_ratio"] <= hi,
        "f0_mean": result["f0_mean_rel_error"] <= TARGETS["f0_mean_rel_error_max"],
        "train_time": train_s <= TARGETS["train_s_max"],
        "rtf": rtf <= TARGETS["rtf_max"],
        "output_rate": OUTPUT_RATE >= TARGETS["output_rate_min"],
    }
