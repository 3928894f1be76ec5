"""``dhf bench voice``: training wall time per profile and synthesis speed (real-time factor).

Each profile trains on the data's ``train/`` takes and then says the ``heldout/`` sentences
(texts only) in the cloned voice; one sentence is said first, untimed, to load the models.
"""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .model import VoiceModel
from .synthesize import synthesize
from .train import log, takes_in, train


def _profile(data_dir: Path, profile: str, sentences: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dhf-voice-bench-") as tmp:
        began = time.perf_counter()
        checkpoint, report = train(data_dir / "train", tmp, profile)
        train_s = time.perf_counter() - began
        size = os.path.getsize(checkpoint)
        model = VoiceModel.load(checkpoint)
    texts = [t.text for t in takes_in(data_dir / "heldout")][:sentences]
    synthesize(model, texts[0])  # warm-up: piper session, pocketsphinx, torch
    began = time.perf_counter()
    samples, rate = synthesize(model, " ".join(texts))
    synth_s = time.perf_counter() - began
    log(
        1.0,
        f"{profile}: trained in {train_s:.0f} s, synthesis RTF {synth_s * rate / len(samples):.3f}",
    )
    return {
        "train_s": round(train_s, 1),
        "train_sentences": report["sentences"],
        "checkpoint_mb": round(size / 2**20, 2),
        "synthesis_s": round(synth_s, 2),
        "audio_s": round(len(samples) / rate, 2),
        "rtf": round(synth_s * rate / len(samples), 3),
        "sample_rate": rate,
        "settings": report["settings"],
    }


def bench(
    data_dir: str | os.PathLike[str], profiles: list[str], sentences: int = 10
) -> dict[str, Any]:
    data = Path(data_dir)
    results = {p: _profile(data, p, sentences) for p in profiles}
    return {
        "benchmark": "voice",
        "data": data.name,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "cuda": torch.cuda.is_available(),
        },
        "profiles": results,
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
