"""Train a person's voice model from their read takes (``<id>.wav`` + ``<id>.txt``).

Skeleton: data (force-align each take, WORLD-analyse it and the base voice saying the
same sentence at the speaker's speaking rate), DTW-pair the frames, fit the network,
estimate global variances, save an atomic checkpoint and a quality report (JSON + PNG).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from compliance.media import audio
from compliance.progress import Progress

from .features import RATE, World, analyse, base_voice, dtw_path
from .model import (
    Net,
    VoiceModel,
    VoiceSettings,
    settings_for,
    source_frames,
    stack,
    target_frames,
)
from .samples import heldback, similarity_gain
from .samples import write as write_samples
from .speech import Alignment, align

T = TypeVar("T")
R = TypeVar("R")
FRAME_S_WORLD = 0.005  # WORLD frame period in seconds
MARGIN_S = 0.05  # kept around the aligned speech when trimming silence


def log(fraction: float, stage: str) -> None:
    """The default progress callback: one line on stderr."""
    print(f"[voice {fraction:5.1%}] {stage}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Take:
    wav: Path
    text: str


def takes_in(directory: str | os.PathLike[str]) -> list[Take]:
    """Every ``<id>.wav`` with an ``<id>.txt`` transcript beside it, sorted by id."""
    found = sorted(Path(directory).glob("*.wav"))
    return [
        Take(w, w.with_suffix(".txt").read_text().strip())
        for w in found
        if w.with_suffix(".txt").exists()
    ]


def _map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    if workers <= 1 or len(items) < 4:
        return [fn(i) for i in items]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(fn, items, chunksize=max(1, len(items) // (4 * workers))))


@dataclass
class Track:
    """One utterance's WORLD frames and its forced alignment, both from the trimmed start."""

    world: World
    alignment: Alignment


def _track(samples: npt.NDArray[Any], text: str, order: int) -> Track | None:
    alignment = align(samples, text)
    if alignment is None or alignment.phone_count == 0:
        return None
    start, end = alignment.speech
    first = max(start - MARGIN_S, 0.0)
    world = analyse(samples, order).trim(first, end + MARGIN_S)
    return Track(world, alignment.shifted(-first))


def _real(args: tuple[Take, int]) -> Track | None:
    take, order = args
    return _track(audio(take.wav, RATE), take.text, order)


def _base(args: tuple[npt.NDArray[Any], str, int]) -> Track | None:
    return _track(*args)


def frame_pairs(
    src: Alignment, tgt: Alignment, n_src: int, n_tgt: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]] | None:
    """Pair 5 ms frames of two readings of the same text: phone by phone where a word has
    the same phones in both (linear inside each phone), else word by word. None when the
    word sequences differ."""
    src_words, tgt_words = src.word_phones(), tgt.word_phones()
    if len(src_words) != len(tgt_words):
        return None
    i_all, j_all = [], []
    for ps, pt in zip(src_words, tgt_words, strict=True):
        if not ps or not pt:
            continue
        spans = (
            zip(ps, pt, strict=True)
            if [p[0] for p in ps] == [p[0] for p in pt]
            else [(("", ps[0][1], ps[-1][2]), ("", pt[0][1], pt[-1][2]))]
        )
        for (_, s0, s1), (_, t0, t1) in spans:
            j = np.arange(
                round(t0 / FRAME_S_WORLD),
                max(round(t1 / FRAME_S_WORLD), round(t0 / FRAME_S_WORLD) + 1),
            )
            frac = (j - t0 / FRAME_S_WORLD + 0.5) / max((t1 - t0) / FRAME_S_WORLD, 1e-6)
            i_all.append(np.round(s0 / FRAME_S_WORLD + frac * (s1 - s0) / FRAME_S_WORLD - 0.5))
            j_all.append(j)
    if not j_all:
        return None
    i, j = np.concatenate(i_all).astype(int), np.concatenate(j_all)
    keep = (j < n_tgt) & (i < n_src) & (i >= 0)
    return i[keep], j[keep]


def speaking_rate(texts: Iterable[str], real_phone_s: float) -> float:
    """Speaker's phone time over the base voice's for the same sentences: its length_scale."""
    base = 0.0
    for text in texts:
        alignment = align(base_voice(text), text)
        base += alignment.phone_seconds if alignment else 0.0
    return float(np.clip(real_phone_s / max(base, 1e-6), 0.6, 1.8))


def _normaliser(frames: list[npt.NDArray[Any]]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    joined = np.vstack(frames)
    return joined.mean(axis=0), joined.std(axis=0) + 1e-5


def _lf0_moments(worlds: list[World]) -> npt.NDArray[Any]:
    lf0 = np.concatenate([np.log(w.f0[w.voiced]) for w in worlds])
    return np.array([lf0.mean(), lf0.std()])


def _robust_std(x: npt.NDArray[Any]) -> float:
    return float(np.subtract(*np.percentile(x, [75, 25])) / 1.349)


def _lf0_within(worlds: list[World]) -> npt.NDArray[Any]:
    """[0, mean per-sentence robust spread of voiced log-F0]: how much the speaker's
    intonation moves (interquartile range / 1.349: harvest's octave errors left out)."""
    per = [_robust_std(np.log(w.f0[w.voiced])) for w in worlds if w.voiced.sum() > 2]
    return np.array([0.0, float(np.mean(per)) if per else 0.0])


def build_bank(
    s: VoiceSettings,
    stats: dict[str, npt.NDArray[Any]],
    xs: list[npt.NDArray[Any]],
    real: list[World],
    index: list[npt.NDArray[Any]],
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]:
    """The speaker's real frames (mel-cepstrum, aperiodicity) paired in training, keyed by the
    base voice's stacked frames paired with them, projected on ``knn_dims`` principal axes
    (scaled so the keys weigh as much as the ``order - 1`` normalised envelope dims)."""
    x = np.vstack(xs).astype(np.float64)
    mean = x.mean(axis=0)
    sub = x[:: max(1, len(x) // 20000)] - mean
    _, _, vt = np.linalg.svd(sub, full_matrices=False)
    proj = vt[: s.knn_dims].T
    keys = (x - mean) @ proj
    proj = proj * np.sqrt((s.order - 1) / keys.var(axis=0).sum())
    stats["key_mean"], stats["key_proj"] = mean, proj
    keys = ((x - mean) @ proj).astype(np.float16)
    bank = np.vstack([w.mcep[j] for w, j in zip(real, index, strict=True)]).astype(np.float32)
    cap = np.vstack([w.cap[j] for w, j in zip(real, index, strict=True)]).astype(np.float32)
    return bank, keys, cap


class Trainer:
    """Holds the paired data and the model while it trains."""

    def __init__(self, settings: VoiceSettings, progress: Progress = log):
        self.s, self.progress = settings, progress
        torch.manual_seed(settings.seed)
        torch.set_num_threads(settings.threads)
        self.device = settings.device if torch.cuda.is_available() else "cpu"
        self.net = Net(settings).to(self.device)
        self.losses: dict[str, list[float]] = {"train": [], "val": []}

    def data(self, takes: Sequence[Take]) -> None:
        """Analyse every take and the base voice saying it; find the speaking rate."""
        s = self.s
        self.progress(0.02, f"aligning and analysing {len(takes)} takes")
        real = _map(_real, [(t, s.order) for t in takes], s.workers)
        texts = [t.text for t in takes]
        phone_s = sum(r.alignment.phone_seconds for r in real if r is not None)
        self.progress(0.25, "measuring the speaking rate")
        self.rate = speaking_rate([t for t, r in zip(texts, real, strict=True) if r], phone_s)
        self.progress(0.3, f"rendering the base voice at length_scale {self.rate:.2f}")
        renders = [base_voice(t, self.rate) for t, r in zip(texts, real, strict=True) if r]
        kept = [(t, r) for t, r in zip(takes, real, strict=True) if r]
        base = _map(
            _base,
            [(a, t.text, s.order) for a, (t, _) in zip(renders, kept, strict=True)],
            s.workers,
        )
        both = [(t, r, b) for (t, r), b in zip(kept, base, strict=True) if b is not None]
        self.takes = [t for t, _, _ in both]
        self.texts = [t.text for t, _, _ in both]
        self.real = [r.world for _, r, _ in both]
        self.base = [b.world for _, _, b in both]
        self.alignments = [(b.alignment, r.alignment) for _, r, b in both]
        self.stats = {
            "src_mean": _normaliser([source_frames(w) for w in self.base])[0],
            "src_std": _normaliser([source_frames(w) for w in self.base])[1],
            "tgt_mean": _normaliser([target_frames(w) for w in self.real])[0],
            "tgt_std": _normaliser([target_frames(w) for w in self.real])[1],
            "f0_src": _lf0_moments(self.base),
            "f0_tgt": _lf0_moments(self.real),
            "gv": np.ones(self.s.order + 1),
            "f0_within": _lf0_within(self.real),
        }
        self.stats["src_std"][-1] = 1.0  # voicing flag: already 0/1
        self.stats["src_mean"][-1] = 0.0

    def model(self) -> VoiceModel:
        if not self.s.knn:
            return VoiceModel(self.s, self.net.cpu(), self.stats, self.rate)
        if self.s.knn_match == "pred":
            bank = np.vstack([w.mcep for w in self.real])
            return VoiceModel(self.s, self.net.cpu(), self.stats, self.rate, bank)
        bank, keys, cap = build_bank(self.s, self.stats, self.xs, self.real, self.pair_index)
        return VoiceModel(self.s, self.net.cpu(), self.stats, self.rate, bank, keys, cap)

    def pairs(self) -> tuple[list[npt.NDArray[Any]], list[npt.NDArray[Any]]]:
        """Paired (stacked input, target) frames per sentence: forced-alignment phones,
        DTW on mel-cepstra where the two readings' words do not line up."""
        st, xs, ys, index = self.stats, [], [], []
        for base, real, (a_src, a_tgt) in zip(self.base, self.real, self.alignments, strict=True):
            src = (source_frames(base) - st["src_mean"]) / st["src_std"]
            tgt = (target_frames(real) - st["tgt_mean"]) / st["tgt_std"]
            paired = frame_pairs(a_src, a_tgt, len(src), len(tgt))
            i, j = paired or dtw_path(src[:, 1 : self.s.order], tgt[:, 1 : self.s.order])
            xs.append(stack(src, self.s.context)[i])
            ys.append(tgt[j].astype(np.float32))
            index.append(j)
        self.xs, self.pair_index = xs, index
        return xs, ys

    def fit(
        self, xs: list[npt.NDArray[Any]], ys: list[npt.NDArray[Any]], start: float, span: float
    ) -> None:
        """One alignment pass of training; ``samples.heldback`` sentences (the first in every
        20: 0, 20, 40, ...) are held out for the validation loss and the report's samples."""
        s, dev = self.s, self.device
        val = set(heldback(len(xs)))

        def take(arr: list[npt.NDArray[Any]], held: bool) -> torch.Tensor:
            return torch.from_numpy(np.vstack([a for k, a in enumerate(arr) if (k in val) == held]))

        x, y = take(xs, False).to(dev), take(ys, False).to(dev)
        xv, yv = (take(xs, True).to(dev), take(ys, True).to(dev)) if val else (x[:0], y[:0])
        weight = torch.ones(s.order + 1, device=dev)
        weight[-1] = s.order / 4  # log-F0 is one dim of many: weight the intonation up
        opt = torch.optim.Adam(self.net.parameters(), lr=s.lr)
        steps = s.epochs * math.ceil(len(x) / s.batch)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=s.lr * 0.05)
        for epoch in range(s.epochs):
            self.net.train()
            order, total = torch.randperm(len(x), device=dev), 0.0
            for b in range(0, len(x), s.batch):
                idx = order[b : b + s.batch]
                loss = (((self.net(x[idx]) - y[idx]) ** 2) * weight).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            self.losses["train"].append(total / len(x))
            self.net.eval()
            with torch.no_grad():
                v = (((self.net(xv) - yv) ** 2) * weight).mean() if len(xv) else torch.tensor(0.0)
            self.losses["val"].append(float(v))
            frac = start + span * (epoch + 1) / s.epochs
            self.progress(
                frac, f"epoch {epoch + 1}/{s.epochs} loss {total / len(x):.3f} val {float(v):.3f}"
            )

    def variance(self) -> None:
        """Global-variance ratio per output (within-utterance spread, real over predicted)."""
        model = self.model()
        model.settings = VoiceSettings(**{**asdict(self.s), "gv": False})
        pred_var, real_var = [], []
        for base, real in zip(self.base, self.real, strict=True):
            p, r = model.predict(base), target_frames(real)
            pv, rv = p[:, :-1].var(axis=0), r[:, :-1].var(axis=0)
            lp = p[base.voiced, -1] if base.voiced.sum() > 2 else p[:, -1]
            lr = r[real.voiced, -1] if real.voiced.sum() > 2 else r[:, -1]
            pred_var.append(np.append(pv, lp.var()))
            real_var.append(np.append(rv, lr.var()))
        ratio = np.sqrt(np.mean(real_var, axis=0) / (np.mean(pred_var, axis=0) + 1e-9))
        self.stats["gv"] = np.clip(ratio, 0.5, 3.0)
        self.stats["gv"][0] = 1.0  # c0 is loudness; normalised after synthesis anyway


def train(
    source_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    profile: str | VoiceSettings = "cpu",
    progress: Progress | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train on the takes in ``source_dir`` (see ``takes_in``); write voice.pt, report.json
    and report.png into ``out_dir``; return the checkpoint and the report. ``progress``
    defaults to a line on stderr per step."""
    began = time.perf_counter()
    progress = progress or log
    trainer = Trainer(settings_for(profile), progress)
    trainer.data(takes_in(source_dir))
    progress(0.45, "pairing frames by forced alignment")
    xs, ys = trainer.pairs()
    trainer.fit(xs, ys, 0.45, 0.5)
    trainer.variance()
    model = trainer.model()
    out = Path(out_dir)
    progress(0.97, "samples: held-back sentences, clone and base voice")
    held = [(t.text, t.wav) for t in trainer.takes]
    samples = write_samples(model, held, heldback(len(held)), out / "samples")
    report = _report(trainer, model, time.perf_counter() - began)
    report["samples"] = samples
    report["samples_similarity_gain"] = similarity_gain(samples)
    model.save(out / "voice.pt", report)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(trainer, model, out / "report.png")
    progress(1.0, f"trained in {report['train_s']:.0f} s")
    return out / "voice.pt", report


def _report(trainer: Trainer, model: VoiceModel, seconds: float) -> dict[str, Any]:
    st = trainer.stats
    return {
        "settings": asdict(trainer.s),
        "sentences": len(trainer.real),
        "frames": int(sum(len(w.f0) for w in trainer.real)),
        "length_scale": round(trainer.rate, 3),
        "f0_base_hz": round(float(np.exp(st["f0_src"][0])), 1),
        "f0_speaker_hz": round(float(np.exp(st["f0_tgt"][0])), 1),
        "f0_speaker_std_semitones": round(float(st["f0_tgt"][1] * 12 / np.log(2)), 2),
        "gv": [round(float(g), 3) for g in st["gv"]],
        "loss_train": [round(v, 4) for v in trainer.losses["train"]],
        "loss_val": [round(v, 4) for v in trainer.losses["val"]],
        "train_s": round(seconds, 1),
    }


def _plot(trainer: Trainer, model: VoiceModel, path: Path) -> None:
    """Loss curves, and the F0 of one sentence: base voice, converted, the speaker's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    ax1.plot(trainer.losses["train"], label="train")
    ax1.plot(trainer.losses["val"], label="validation")
    ax1.set(xlabel="epoch (all DTW passes)", ylabel="weighted MSE", title="loss")
    ax1.legend()
    base, real = trainer.base[0], trainer.real[0]
    conv = model.convert(base)
    for world, label in ((base, "base voice"), (conv, "converted"), (real, "speaker")):
        t = np.arange(len(world.f0)) * 0.005
        ax2.plot(t, np.where(world.voiced, world.f0, np.nan), label=label, lw=1)
    ax2.set(xlabel="s", ylabel="F0 (Hz)", title=trainer.texts[0][:48])
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
