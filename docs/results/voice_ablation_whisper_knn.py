"""Issue 17 ablation rows "whisper-knn": kNN-VC-style frame selection matched in Whisper
encoder space (docs/results/voice_ablation_cpu.json). Not part of the product.

One cpu-profile training on voice_slt/train; for each held-out sentence the base voice
(piper at the speaker's rate) is WORLD-analysed and converted as the product does (net +
GV + F0 spread); then each 5 ms envelope is replaced by the mean of the k speaker frames
nearest in Whisper base encoder space (CTranslate2 ``encode`` of the loaded faster-whisper
model; 20 ms encoder frames, each carrying its 4 WORLD frames), F0, voicing and
aperiodicity kept from the conversion. ``joint`` rows match on [encoder output x weight,
the net's normalised envelope] per 5 ms frame. Judged like ``dhf eval voice``.

    nice -n 15 .venv/bin/python docs/results/voice_ablation_whisper_knn.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np

from compliance.media import audio, resample
from pipeline import asr
from pipeline.voice.evaluate import _similarity_scores, _wer
from pipeline.voice.features import (
    OUTPUT_RATE,
    RATE,
    World,
    analyse,
    base_voice,
    normalise_loudness,
    synthesise,
    to_output_rate,
)
from pipeline.voice.model import VoiceModel
from pipeline.voice.train import takes_in, train

SLT = Path(__file__).resolve().parents[3] / "shared" / "data" / "voice_slt"
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/vabl")
checkpoint = OUT / "model" / "voice.pt"
if not checkpoint.exists():
    began = time.perf_counter()
    train(SLT / "train", OUT / "model", "cpu")
    (OUT / "train_s.txt").write_text(f"{time.perf_counter() - began:.1f}\n")
model = VoiceModel.load(checkpoint)
whisper = asr.load_model()


def encode(x: Any, pad30: bool = False) -> Any:
    """Whisper base encoder output (T/2, 512) of 16 kHz audio; ``pad30``: padded to 30 s as
    in decoding (and cropped after), else the log-mel of the clip alone."""
    mel = whisper.feature_extractor(x)
    n = mel.shape[1] - mel.shape[1] % 2
    total = 3000 if pad30 else n
    f = np.zeros((1, 80, total), np.float32)
    f[0, :, : min(n, total)] = mel[:, : min(n, total)]
    out = np.array(whisper.model.encode(ctranslate2.StorageView.from_array(f), to_cpu=True))[0]
    return out[: n // 2]


def unit(a: Any) -> Any:
    return a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-8)


def bank_for(pad30: bool) -> tuple[Any, Any]:
    """The speaker's training takes: unit encoder frames (N, 512), their WORLD mel-cepstra
    (N, 4, 40)."""
    path = OUT / f"bank{'30' if pad30 else ''}.npz"
    if path.exists():
        z = np.load(path)
        return z["keys"], z["vals"]
    keys, vals = [], []
    for take in takes_in(SLT / "train"):
        x = audio(take.wav, RATE)
        w, e = analyse(x, model.settings.order), encode(x, pad30)
        n = min(len(e), len(w.f0) // 4)
        keys.append(e[:n])
        vals.append(w.mcep[: 4 * n].reshape(n, 4, -1))
    k, v = unit(np.vstack(keys)).astype(np.float32), np.vstack(vals).astype(np.float32)
    np.savez(path, keys=k, vals=v)
    return k, v


def per_world_frame(e: Any, n: int) -> Any:
    """Encoder rows repeated to the 5 ms frames (4 each), the last one extended to ``n``."""
    r = np.repeat(e, 4, 0)
    return np.vstack([r, np.repeat(r[-1:], max(0, n - len(r)), 0)])[:n]


heldout = takes_in(SLT / "heldout")
real = [audio(t.wav, RATE) for t in heldout]
base = [base_voice(t.text) for t in heldout]
piper = [base_voice(t.text, model.length_scale) for t in heldout]
worlds = [analyse(p, model.settings.order) for p in piper]
convs = [model.convert(w) for w in worlds]
mean, std = model.stats["tgt_mean"][1:-1], model.stats["tgt_std"][1:-1]


def deliver(w: World) -> Any:
    """As a render gets it (22.05 kHz, loudness-normalised), back at the judges' 16 kHz."""
    return resample(normalise_loudness(to_output_rate(synthesise(w))), OUTPUT_RATE, RATE)


def judge(name: str, gens: list[Any], conv_s: float, kw: dict[str, Any]) -> None:
    sim = _similarity_scores(real, gens, base)
    wer = float(np.mean([_wer(g, t.text) for g, t in zip(gens, heldout, strict=True)]))
    row = {
        "variant": name,
        "sim": sim["generated"],
        "gain": sim["gain"],
        "wer": round(wer, 3),
        "conv_s": round(conv_s, 1),
        "audio_s": round(sum(len(g) for g in gens) / RATE, 1),
        "n": len(gens),
        "kw": kw,
    }
    print(json.dumps(row), flush=True)
    with open(OUT / "rows.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")


def knn(pad30: bool, k: int, c0_net: bool) -> None:
    keys, vals = bank_for(pad30)
    began, gens = time.perf_counter(), []
    for p, w, c in zip(piper, worlds, convs, strict=True):
        idx = np.argpartition(-(unit(encode(p, pad30)) @ keys.T), k, axis=1)[:, :k]
        sel = per_world_frame(vals[idx].mean(axis=1).reshape(-1, vals.shape[-1]), len(w.f0))
        sel = sel.astype(np.float64)
        if c0_net:
            sel[:, 0] = c.mcep[:, 0]
        gens.append(deliver(World(c.f0, np.ascontiguousarray(sel), c.cap)))
    conv_s = time.perf_counter() - began
    match = f"whisper-encoder ({'30 s padded' if pad30 else 'unpadded'})"
    kw = {"knn": k, "match": match, "c0": "net" if c0_net else "selected"}
    judge(f"whisper{'30' if pad30 else ''}_k{k}{'_c0net' if c0_net else ''}", gens, conv_s, kw)


def joint(weight: float, k: int = 4) -> None:
    keys, vals = bank_for(False)
    world_mcep = vals.reshape(len(keys) * 4, -1)
    bank = np.hstack([np.repeat(keys, 4, 0) * weight, (world_mcep[:, 1:] - mean) / std])
    bank = bank.astype(np.float32)
    norms = (bank**2).sum(1)[None, :]
    began, gens = time.perf_counter(), []
    for p, w, c in zip(piper, worlds, convs, strict=True):
        n = len(w.f0)
        q_e = per_world_frame(unit(encode(p)), n) * weight
        q = np.hstack([q_e, (c.mcep[:, 1:] - mean) / std]).astype(np.float32)
        idx = np.empty((n, k), np.int64)
        for a in range(0, n, 512):
            d = norms - 2 * q[a : a + 512] @ bank.T
            idx[a : a + 512] = np.argpartition(d, k, axis=1)[:, :k]
        sel = world_mcep[idx].mean(axis=1).astype(np.float64)
        sel[:, 0] = c.mcep[:, 0]
        gens.append(deliver(World(c.f0, np.ascontiguousarray(sel), c.cap)))
    kw = {"knn": k, "match": "whisper-encoder (unpadded) + net envelope", "enc_weight": weight}
    conv_s = time.perf_counter() - began
    judge(f"joint_whisper_w{weight:.1f}_k{k}", gens, conv_s, kw)


began = time.perf_counter()
judge("current", [deliver(c) for c in convs], time.perf_counter() - began, {})
for pad30, k, c0_net in ((False, 4, False), (False, 4, True), (False, 8, False), (True, 4, False)):
    knn(pad30, k, c0_net)
for weight in (np.sqrt(39.0), 2 * np.sqrt(39.0)):
    joint(float(weight))
