"""The person-specific voice model: settings profiles, the network, checkpoints, conversion.

The model maps the base voice's WORLD frames (mel-cepstrum, log-F0, voicing, with
``context`` frames either side) to the speaker's mel-cepstrum and log-F0: timbre AND
intonation. Global-variance scaling undoes the regression's over-smoothing; the speaking
rate becomes piper's ``length_scale``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from ..profiles import lookup
from .features import World, interpolate_lf0


@dataclass(frozen=True)
class VoiceSettings:
    name: str  # profile name
    order: int = 40  # mel-cepstrum dimensions (with c0)
    context: int = 3  # frames of context on each side of the input frame (5 ms each)
    hidden: int = 512  # width of each hidden layer
    layers: int = 3  # hidden layers
    dropout: float = 0.1  # on hidden layers while training
    epochs: int = 12  # passes over the paired frames
    batch: int = 512  # frames per step
    lr: float = 1e-3  # Adam learning rate (cosine-decayed to 5%)
    f0_model: str = "net"  # "net": learned contour; "linear": log-F0 mean/variance only
    gv: bool = True  # global-variance scaling of the mel-cepstrum (undoes over-smoothing)
    gv_f0: bool = False  # the same for log-F0 (off: measured output F0 spread was too wide)
    knn: int = 0  # > 0: replace each predicted envelope by the mean of its k nearest real frames
    knn_match: str = "pred"  # what picks the k real frames: "pred" (the net's envelope),
    # "source" (the base voice's stacked frames paired with each real frame in training),
    # "joint" (both: the base voice's content and the net's envelope)
    knn_cap: bool = False  # also take the selected frames' real aperiodicity
    knn_dims: int = 64  # principal components of the stacked source frames kept as keys
    smooth: int = 0  # > 0: moving average over 2*smooth+1 frames of the selected envelope
    f0_spread: float = 1.0  # > 0: scale each sentence's log-F0 deviations to this many
    # times the speaker's within-sentence spread (0: the net's contour unchanged)
    workers: int = 2  # processes for WORLD analysis
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # "cuda" for the gpu profile when one is present
    seed: int = 0


PROFILES = {
    "tiny": VoiceSettings(
        "tiny",
        order=24,
        context=1,
        hidden=64,
        layers=2,
        epochs=12,
        batch=256,
        workers=1,
    ),
    "cpu": VoiceSettings("cpu"),
    "gpu": VoiceSettings(
        "gpu",
        context=5,
        hidden=1024,
        layers=4,
        epochs=40,
        batch=1024,
        workers=4,
        threads=4,
        device="cuda",
    ),
}


def settings_for(profile: str | VoiceSettings) -> VoiceSettings:
    """The named voice profile (or the given settings)."""
    return lookup("voice", PROFILES, profile)


class Net(nn.Module):
    """An MLP over stacked frames: (N, (2c+1)*(D+2)) -> (N, D+1) (mel-cepstrum, log-F0)."""

    def __init__(self, s: VoiceSettings):
        super().__init__()
        width, dims = (2 * s.context + 1) * (s.order + 2), []
        for _ in range(s.layers):
            dims += [nn.Linear(width, s.hidden), nn.GELU(), nn.Dropout(s.dropout)]
            width = s.hidden
        self.body = nn.Sequential(*dims, nn.Linear(width, s.order + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def source_frames(world: World) -> npt.NDArray[Any]:
    """Per-frame input features (unnormalised): mel-cepstrum, log-F0, voicing."""
    return np.hstack([world.mcep, interpolate_lf0(world.f0)[:, None], world.voiced[:, None]])


def target_frames(world: World) -> npt.NDArray[Any]:
    """Per-frame regression targets (unnormalised): mel-cepstrum, log-F0."""
    return np.hstack([world.mcep, interpolate_lf0(world.f0)[:, None]])


def _moving_average(frames: npt.NDArray[Any], half: int) -> npt.NDArray[Any]:
    """Mean over 2*half+1 neighbouring rows (edges repeated)."""
    padded = np.pad(frames, ((half, half), (0, 0)), mode="edge")
    kernel = np.cumsum(np.vstack([np.zeros((1, frames.shape[1])), padded]), axis=0)
    return (kernel[2 * half + 1 :] - kernel[: -2 * half - 1]) / (2 * half + 1)


def stack(frames: npt.NDArray[Any], context: int) -> npt.NDArray[Any]:
    """Each row followed by its neighbours ``context`` frames either side (edges repeated)."""
    padded = np.pad(frames, ((context, context), (0, 0)), mode="edge")
    n = len(frames)
    return np.hstack([padded[i : i + n] for i in range(2 * context + 1)]).astype(np.float32)


@dataclass
class VoiceModel:
    """A trained model with everything conversion needs; saved as one checkpoint file."""

    settings: VoiceSettings
    net: Net
    stats: dict[str, npt.NDArray[Any]]  # src_mean, src_std, tgt_mean, tgt_std, gv, f0 moments
    length_scale: float  # piper length_scale that matches the speaker's speaking rate
    bank: npt.NDArray[Any] | None = None  # (N, order) the speaker's real mel-cepstra, for ``knn``
    bank_keys: npt.NDArray[Any] | None = (
        None  # (N, knn_dims) projected source frames paired with bank
    )
    bank_cap: npt.NDArray[Any] | None = None  # (N, cap dims) the bank frames' real aperiodicity

    def predict(self, world: World) -> npt.NDArray[Any]:
        """Speaker-domain targets (unnormalised mel-cepstrum + log-F0) for source frames."""
        s = self.stats
        x = (source_frames(world) - s["src_mean"]) / s["src_std"]
        self.net.eval()
        with torch.no_grad():
            y = self.net(torch.from_numpy(stack(x, self.settings.context))).numpy()
        return y * s["tgt_std"] + s["tgt_mean"]

    def convert(self, world: World) -> World:
        """The base voice's frames in the speaker's timbre and intonation."""
        y = self.predict(world).astype(np.float64)
        if self.settings.gv:
            gv = self.stats["gv"].copy()
            gv[-1] = gv[-1] if self.settings.gv_f0 else 1.0
            y = y.mean(axis=0) + (y - y.mean(axis=0)) * gv
        if self.settings.f0_model == "linear":
            s = self.stats
            lf0 = (interpolate_lf0(world.f0) - s["f0_src"][0]) / s["f0_src"][1]
            y[:, -1] = lf0 * s["f0_tgt"][1] + s["f0_tgt"][0]
        mcep, cap = y[:, :-1], world.cap
        if self.settings.knn and self.bank is not None:
            idx = self._select(world, mcep)
            chosen = self.bank[idx].mean(axis=1)
            if self.settings.smooth:
                chosen = _moving_average(chosen, self.settings.smooth)
            mcep = np.column_stack([mcep[:, :1], chosen[:, 1:]])
            if self.settings.knn_cap and self.bank_cap is not None:
                cap = self.bank_cap[idx].mean(axis=1).astype(np.float64)
        lf0 = y[:, -1]
        if self.settings.f0_spread > 0 and world.voiced.sum() > 2:
            v = world.voiced
            centre = lf0[v].mean()
            q75, q25 = np.percentile(lf0[v], [75, 25])
            spread = (q75 - q25) / 1.349 + 1e-6
            want = self.settings.f0_spread * float(self.stats.get("f0_within", [0, 0])[1])
            if want > 0:
                lf0 = centre + (lf0 - centre) * (want / spread)
        f0 = np.where(world.voiced, np.exp(lf0), 0.0)
        return World(f0, np.ascontiguousarray(mcep), np.ascontiguousarray(cap))

    def _select(self, world: World, mcep: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Indices (T, knn) of the bank frames chosen for each source frame."""
        s, st = self.settings, self.stats
        mode = s.knn_match if self.bank_keys is not None else "pred"
        parts_q, parts_b = [], []
        if mode in ("source", "joint"):
            x = (source_frames(world) - st["src_mean"]) / st["src_std"]
            q = (stack(x, s.context) - st["key_mean"]) @ st["key_proj"]
            parts_q.append(q.astype(np.float32))
            parts_b.append(self.bank_keys.astype(np.float32))  # type: ignore[union-attr]
        if mode in ("pred", "joint"):
            mean, std = st["tgt_mean"][1:-1], st["tgt_std"][1:-1]
            parts_q.append(((mcep[:, 1:] - mean) / std).astype(np.float32))
            parts_b.append(((self.bank[:, 1:] - mean) / std).astype(np.float32))  # type: ignore[index]
        query, bank = np.hstack(parts_q), np.hstack(parts_b)
        norms = (bank**2).sum(1)[None, :]
        out = np.empty((len(query), s.knn), np.int64)
        for a in range(0, len(query), 256):
            dist = norms - 2 * query[a : a + 256] @ bank.T
            out[a : a + 256] = np.argpartition(dist, s.knn, axis=1)[:, : s.knn]
        return out

    def save(self, path: str | os.PathLike[str], report: dict[str, Any] | None = None) -> None:
        """Atomic write: settings, weights, statistics (tensors and plain types only)."""
        payload = {
            "settings": asdict(self.settings),
            "state": self.net.state_dict(),
            "stats": {
                k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in self.stats.items()
            },
            "length_scale": float(self.length_scale),
            "bank": torch.from_numpy(
                np.asarray(self.bank if self.bank is not None else [], np.float32)
            ),
            "bank_keys": torch.from_numpy(
                np.asarray(self.bank_keys if self.bank_keys is not None else [], np.float16)
            ),
            "bank_cap": torch.from_numpy(
                np.asarray(self.bank_cap if self.bank_cap is not None else [], np.float32)
            ),
            "report": report or {},
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VoiceModel:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        known = {f.name for f in fields(VoiceSettings)}
        settings = VoiceSettings(**{k: v for k, v in payload["settings"].items() if k in known})
        net = Net(settings)
        net.load_state_dict(payload["state"])
        stats = {k: v.numpy() for k, v in payload["stats"].items()}
        extra = {}
        for name in ("bank", "bank_keys", "bank_cap"):
            value = payload.get(name)
            extra[name] = value.numpy() if value is not None and value.numel() else None
        return cls(settings, net, stats, float(payload["length_scale"]), **extra)
