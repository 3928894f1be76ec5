"""Training of the audio -> shape model: fixed skeleton, atomic checkpoints, quality report.

``train(work_dir, out_dir, profile)`` builds the data (normalised log-mel and PCA
coefficients per segment, the last segments held back), builds the model, runs the epochs
keeping the best state on the held-back segments, and writes into ``out_dir`` (rendering
reads ``<work_dir>/model/``):

- ``model.pt`` (+ ``model.pt.sha256``): the ensemble's state dict (a checkpoint after
  each member), profile, PCA space, mel statistics,
  neutral (closed-mouth) shape; loaded with ``weights_only=True`` after a hash check;
- ``report.json`` and ``loss.png``: loss curves, and the same held-back figures for the
  ridge baseline and for the untrained (mean shape) model.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from compliance.progress import Progress

from . import features, ingest, profiles
from . import landmarks as lm
from .model import AudioToShape, Ensemble, LipSpace, RidgeBaseline
from .profiles import FaceProfile

SEGMENT = 250  # frames: long recordings are cut into segments of about 10 s
GAIN_DB = 6.0  # random level change of the training audio (log-mel shift)
LIP_UP, LIP_LO = lm.SHAPE.index(lm.LIP_UP), lm.SHAPE.index(lm.LIP_LO)


@dataclass
class Data:
    space: LipSpace
    mel_mean: npt.NDArray[Any]
    mel_std: npt.NDArray[Any]
    train: list[
        tuple[npt.NDArray[Any], npt.NDArray[Any]]
    ]  # (normalised mel (4T, 80), coefs (T, K))
    val: list[tuple[npt.NDArray[Any], npt.NDArray[Any]]]
    neutral: npt.NDArray[Any]  # (K,) closed mouth in silence


def segments(manifest: dict[str, Any]) -> list[tuple[int, int]]:
    """Frame ranges of the clips, long clips cut into pieces of about SEGMENT frames."""
    out = []
    for clip in manifest["clips"]:
        start, end = clip["start"], clip["end"]
        pieces = max(1, round((end - start) / SEGMENT))
        edges = np.linspace(start, end, pieces + 1).round().astype(int)
        out += [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return out


def build_data(ingest_dir: Path, cfg: FaceProfile) -> Data:
    manifest, arrays = ingest.load(ingest_dir)
    parts = segments(manifest)
    n_val = max(1, round(len(parts) * cfg.val_fraction)) if len(parts) > 2 else 0
    train_parts = parts[: len(parts) - n_val] if n_val else parts
    frames = np.concatenate([np.arange(a, b) for a, b in train_parts])
    space = LipSpace.fit(arrays["shapes"][frames], cfg.components)
    mel = arrays["mel"].reshape(-1, features.PER_FRAME, features.N_MELS)
    mel_mean = mel[frames].reshape(-1, features.N_MELS).mean(0)
    mel_std = mel[frames].reshape(-1, features.N_MELS).std(0) + 1e-3
    coefs = space.encode(arrays["shapes"])

    def piece(a: int, b: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        rows = (mel[a:b].reshape(-1, features.N_MELS) - mel_mean) / mel_std
        return rows.astype(np.float32), coefs[a:b]

    quiet = features.silence(arrays["energy"], cfg.silence_db)
    gap = arrays["shapes"][:, LIP_LO, 1] - arrays["shapes"][:, LIP_UP, 1]
    closed = quiet & (gap <= np.percentile(gap, 30))
    neutral = coefs[closed].mean(0) if closed.any() else coefs[gap.argmin()]
    train = [piece(*p) for p in train_parts]
    val = [piece(*p) for p in parts[len(train_parts) :]]
    return Data(space, mel_mean, mel_std, train, val, neutral.astype(np.float32))


def _batch(
    data: Data, cfg: FaceProfile, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    mels, ys = [], []
    for _ in range(cfg.batch):
        mel, y = data.train[rng.integers(len(data.train))]
        w = min(cfg.window, len(y))
        start = int(rng.integers(0, len(y) - w + 1))
        gain = rng.uniform(-1, 1) * GAIN_DB * np.log(10) / 10 / data.mel_std
        chunk = mel[start * features.PER_FRAME : (start + w) * features.PER_FRAME] + gain
        mels.append(chunk.T)
        ys.append(y[start : start + w].T)
    w = min(m.shape[1] for m in mels) // features.PER_FRAME
    mel_t = torch.from_numpy(np.stack([m[:, : w * features.PER_FRAME] for m in mels]))
    return mel_t.float(), torch.from_numpy(np.stack([y[:, :w] for y in ys])).float()


def shape_loss(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """MSE in landmark space (coefficients un-whitened), plus the same on velocities."""
    err = (pred - target) * scale[None, :, None]
    vel = torch.diff(err, dim=2)
    return (err**2).mean() + 0.5 * (vel**2).mean()


def predict(model: torch.nn.Module, mel: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """(4T, 80) normalised mel -> (T, K) coefficients."""
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(mel.T))[None].float())
    return out[0].T.numpy()


def evaluate_split(
    data: Data, fn: Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
) -> dict[str, float]:
    """Held-back landmark RMSE (IOD units) and lip-gap correlation of a predictor."""
    parts = data.val or data.train
    errs, corrs = [], []
    for mel, y in parts:
        pred, real = data.space.decode(fn(mel)), data.space.decode(y)
        errs.append(np.sqrt(((pred - real) ** 2).sum(-1).mean()))
        g_pred = pred[:, LIP_LO, 1] - pred[:, LIP_UP, 1]
        g_real = real[:, LIP_LO, 1] - real[:, LIP_UP, 1]
        if g_pred.std() > 1e-6 and g_real.std() > 1e-6:
            corrs.append(np.corrcoef(g_pred, g_real)[0, 1])
        else:
            corrs.append(0.0)
    return {"rmse": float(np.mean(errs)), "opening_corr": float(np.mean(corrs))}


def train(
    source_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    profile: str | FaceProfile = "cpu",
    progress: Progress | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train on an ingested work dir (``source_dir``); write model.pt, report.json and
    loss.png into ``out_dir`` (rendering looks in ``<work dir>/model``); return the
    checkpoint and the report. ``progress`` defaults to silence."""
    cfg = profiles.profile(profile)
    report = progress or (lambda fraction, message: None)
    torch.set_num_threads(max(1, min(cfg.threads, 2)))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = build_data(Path(source_dir), cfg)
    model = Ensemble(cfg, len(data.space.scale))
    untrained = evaluate_split(data, lambda mel: predict(model.eval(), mel))
    history: dict[str, list[float]] = {}
    epochs_run: list[int] = []
    for i, member in enumerate(model.members):
        torch.manual_seed(cfg.seed + i)
        member.load_state_dict(AudioToShape(cfg, len(data.space.scale)).state_dict())
        curves, best = _run(
            member,
            data,
            cfg,
            rng,
            lambda f, m, i=i: report(
                (i + f) / len(model.members), f"net {i + 1}/{len(model.members)} {m}"
            ),
        )
        member.load_state_dict(best)
        epochs_run.append(len(curves["val"]))
        history.update({f"{k} (net {i + 1})": v for k, v in curves.items()})
        save_checkpoint(
            out / "model.pt",
            Ensemble(cfg, len(data.space.scale), i + 1),
            cfg,
            data,
            model.members[: i + 1],
        )
    ridge = RidgeBaseline.fit([m for m, _ in data.train], [y for _, y in data.train])
    quality = {
        "profile": cfg.name,
        "train_seconds": round(time.perf_counter() - started, 1),
        "frames": int(sum(len(y) for _, y in data.train + data.val)),
        "held_back_segments": len(data.val),
        "epochs": {"planned": cfg.epochs, "run": epochs_run, "patience": cfg.patience},
        "model": evaluate_split(data, lambda mel: predict(model.eval(), mel)),
        "ridge_baseline": evaluate_split(data, ridge.predict),
        "mean_shape": evaluate_split(
            data, lambda mel: np.zeros((len(mel) // 4, len(data.neutral)))
        ),
        "untrained": untrained,
        "history": history,
    }
    (out / "report.json").write_text(json.dumps(quality, indent=1))
    plot_losses(history, out / "loss.png")
    report(1.0, f"trained in {quality['train_seconds']} s")
    return out / "model.pt", quality


def _run(
    model: AudioToShape, data: Data, cfg: FaceProfile, rng: np.random.Generator, report: Progress
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, cfg.lr, total_steps=cfg.epochs * _steps(data, cfg)
    )
    scale = torch.from_numpy(data.space.scale)
    history: dict[str, list[float]] = {"train": [], "val": []}
    best_val, best = float("inf"), {k: v.clone() for k, v in model.state_dict().items()}
    stale = 0  # epochs since the held-back loss last improved by min_delta
    for epoch in range(cfg.epochs):
        model.train()
        losses = []
        for _ in range(_steps(data, cfg)):
            mel, y = _batch(data, cfg, rng)
            loss = shape_loss(model(mel), y, scale)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        val = _val_loss(model, data, scale)
        history["train"].append(float(np.mean(losses)))
        history["val"].append(val)
        stale = 0 if val < best_val * (1 - cfg.min_delta) else stale + 1
        if val < best_val:
            best_val, best = val, {k: v.clone() for k, v in model.state_dict().items()}
        if epoch % 10 == 0 or epoch == cfg.epochs - 1:
            report(
                (epoch + 1) / cfg.epochs, f"epoch {epoch + 1}: train {losses[-1]:.4f} val {val:.4f}"
            )
        if cfg.patience and stale >= cfg.patience:
            report(1.0, f"stopped early at epoch {epoch + 1}: held-back loss flat")
            break
    return history, best


def _steps(data: Data, cfg: FaceProfile) -> int:
    frames = sum(len(y) for _, y in data.train)
    return max(1, round(2 * frames / (cfg.batch * cfg.window)))


def _val_loss(model: AudioToShape, data: Data, scale: torch.Tensor) -> float:
    model.eval()
    parts = data.val or data.train
    with torch.no_grad():
        losses = [
            shape_loss(
                torch.from_numpy(predict(model, m).T)[None], torch.from_numpy(y.T)[None], scale
            ).item()
            for m, y in parts
        ]
    return float(np.mean(losses))


def save_checkpoint(
    path: Path,
    model: Ensemble,
    cfg: FaceProfile,
    data: Data,
    trained: torch.nn.ModuleList | None = None,
) -> None:
    """Atomic write of the model with everything needed to run it, plus its SHA-256.

    ``trained`` (members so far) replaces ``model``'s members: a checkpoint is written
    after each ensemble member, so an interrupted run keeps what it finished."""
    if trained is not None:
        for target, source in zip(model.members, trained, strict=True):
            target.load_state_dict(source.state_dict())
    state = {
        "profile": asdict(cfg),
        "members": len(model.members),
        "state": model.state_dict(),
        "space": {k: torch.from_numpy(getattr(data.space, k)) for k in ("mean", "basis", "scale")},
        "mel_mean": torch.from_numpy(data.mel_mean.astype(np.float32)),
        "mel_std": torch.from_numpy(data.mel_std.astype(np.float32)),
        "neutral": torch.from_numpy(data.neutral),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.replace(tmp, path)
    path.with_name(path.name + ".sha256").write_text(digest + "\n")


@dataclass(frozen=True)
class Trained:
    cfg: FaceProfile
    model: Ensemble
    space: LipSpace
    mel_mean: npt.NDArray[Any]
    mel_std: npt.NDArray[Any]
    neutral: npt.NDArray[Any]


def load_checkpoint(path: str | os.PathLike[str]) -> Trained:
    """Load ``model.pt`` after checking it against its recorded SHA-256."""
    path = Path(path)
    expected = path.with_name(path.name + ".sha256").read_text().strip()
    if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise ValueError(f"{path} does not match its recorded SHA-256; retrain the model")
    state = torch.load(path, weights_only=True)
    cfg = FaceProfile(**state["profile"])
    space = LipSpace(*(state["space"][k].numpy() for k in ("mean", "basis", "scale")))
    model = Ensemble(cfg, len(space.scale), int(state["members"]))
    model.load_state_dict(state["state"])
    model.eval()
    return Trained(
        cfg,
        model,
        space,
        state["mel_mean"].numpy(),
        state["mel_std"].numpy(),
        state["neutral"].numpy(),
    )


def plot_losses(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, values in history.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("shape loss (IOD^2)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
