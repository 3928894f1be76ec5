"""The person-specific audio -> lower-face shape model.

``LipSpace`` is a PCA of the canonical lips + chin points of the training frames;
``AudioToShape`` is a small temporal conv net: log-mel at 4 rows per video frame ->
(strided conv) one vector per frame -> dilated residual blocks -> PCA coefficients;
``Ensemble`` averages a few of them trained from different seeds.
``RidgeBaseline`` (mel window -> coefficients, closed form) is the measured reference the
net has to beat (see the training report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from .features import N_MELS, PER_FRAME
from .profiles import FaceProfile


@dataclass(frozen=True)
class LipSpace:
    mean: npt.NDArray[Any]  # (P*2,) mean canonical shape
    basis: npt.NDArray[Any]  # (K, P*2) orthonormal principal directions
    scale: npt.NDArray[Any]  # (K,) standard deviation of each coefficient

    @classmethod
    def fit(cls, shapes: npt.NDArray[Any], components: int) -> LipSpace:
        flat = shapes.reshape(len(shapes), -1).astype(np.float64)
        mean = flat.mean(0)
        _, sig, vt = np.linalg.svd(flat - mean, full_matrices=False)
        k = min(components, len(vt))
        scale = sig[:k] / np.sqrt(max(len(flat) - 1, 1))
        return cls(
            mean.astype(np.float32),
            vt[:k].astype(np.float32),
            np.maximum(scale, 1e-6).astype(np.float32),
        )

    def encode(self, shapes: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """(N, P, 2) -> (N, K) whitened coefficients."""
        flat = shapes.reshape(len(shapes), -1) - self.mean
        return (flat @ self.basis.T / self.scale).astype(np.float32)

    def decode(self, coefs: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """(N, K) whitened coefficients -> (N, P, 2) canonical shapes."""
        flat = (coefs * self.scale) @ self.basis + self.mean
        return flat.reshape(len(coefs), -1, 2).astype(np.float32)


class Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.net = nn.Sequential(
            nn.Conv1d(channels, channels, kernel, padding=pad, dilation=dilation),
            nn.GroupNorm(1, channels),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class AudioToShape(nn.Module):
    """(B, 80, 4T) normalised log-mel -> (B, K, T) whitened shape coefficients."""

    def __init__(self, cfg: FaceProfile, components: int) -> None:
        super().__init__()
        c = cfg.channels
        self.front = nn.Sequential(
            nn.Conv1d(N_MELS, c, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(c, c, PER_FRAME, stride=PER_FRAME),
            nn.GELU(),
        )
        blocks = [Block(c, cfg.kernel, 2**i, cfg.dropout) for i in range(cfg.blocks)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv1d(c, components, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.front(mel)))


class Ensemble(nn.Module):
    """The mean of ``cfg.ensemble`` independently trained nets (different seeds)."""

    def __init__(self, cfg: FaceProfile, components: int, members: int | None = None) -> None:
        super().__init__()
        count = members or cfg.ensemble
        self.members = nn.ModuleList(AudioToShape(cfg, components) for _ in range(count))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(mel) for m in self.members]).mean(0)


def mel_windows(mel: npt.NDArray[Any], radius: int) -> npt.NDArray[Any]:
    """(4T, 80) -> (T, (2r+1)*4*80): each frame's mel rows with ``radius`` frames around."""
    frames = mel.reshape(-1, PER_FRAME * mel.shape[1])
    padded = np.pad(frames, ((radius, radius), (0, 0)), mode="edge")
    return np.concatenate([padded[i : i + len(frames)] for i in range(2 * radius + 1)], 1)


@dataclass(frozen=True)
class RidgeBaseline:
    weights: npt.NDArray[Any]
    radius: int

    @classmethod
    def fit(
        cls,
        mels: list[npt.NDArray[Any]],
        targets: list[npt.NDArray[Any]],
        radius: int = 3,
        alpha: float = 10.0,
    ) -> RidgeBaseline:
        x = np.concatenate([mel_windows(m, radius) for m in mels])
        x = np.hstack([x, np.ones((len(x), 1), np.float32)])
        y = np.concatenate(targets)
        gram = x.T @ x + alpha * np.eye(x.shape[1], dtype=np.float32)
        return cls(np.linalg.solve(gram, x.T @ y).astype(np.float32), radius)

    def predict(self, mel: npt.NDArray[Any]) -> npt.NDArray[Any]:
        x = mel_windows(mel, self.radius)
        return np.hstack([x, np.ones((len(x), 1), np.float32)]) @ self.weights
