"""Settings profiles of the face pipeline (tiny / cpu / gpu), chosen by name.

One frozen dataclass holds every knob of ingest, training and rendering; the checkpoint
stores the profile it was trained with, so rendering uses exactly the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..profiles import lookup


@dataclass(frozen=True)
class FaceProfile:
    name: str
    # ingest
    # unused since issue 20 (ingest sizes the crops from the footage's own inter-ocular
    # distance, ingest.native_scale); kept so checkpoints that store it still load
    crop_scale: float = 80.0
    # model (audio -> lip shape)
    channels: int = 96  # width of the temporal conv net
    blocks: int = 3  # residual dilated blocks (dilations 1, 2, 4, ...)
    kernel: int = 5  # temporal kernel of each block (video frames)
    components: int = 16  # PCA components of the canonical lip + chin shape
    dropout: float = 0.1
    ensemble: int = 3  # nets trained from different seeds, averaged (held-out corr +0.01)
    # training
    epochs: int = 120
    batch: int = 16
    window: int = 48  # video frames per training chunk
    lr: float = 2e-3
    weight_decay: float = 1e-4
    # early stopping: > 0 stops a net after this many epochs without a held-back loss
    # min_delta (relative) better than its best. Off: measured on the tiny profile (GRID,
    # issue 20) the one-cycle schedule's held-back loss is noisy and flat at the high
    # learning rate, then falls while it anneals (best at epoch 49 of 60): patience 5-10
    # stopped at epoch 7-26 with a 1.19-1.62x worse held-back loss, 15-20 never stopped
    patience: int = 0
    min_delta: float = 0.005
    val_fraction: float = 0.1  # last clips held back for the quality report / best checkpoint
    seed: int = 0
    # rendering
    smooth_sigma: float = 0.5  # Gaussian smoothing of the predicted shape (frames)
    candidates: int = 12  # nearest training mouths considered per frame
    jump_cost: float = 0.15  # retrieval penalty for not continuing the previous mouth clip
    silence_db: float = 20.0  # frames this far below the loud level count as silence
    feather: float = 0.12  # mask feather width (inter-ocular distances)
    threads: int = 2  # torch threads (at most 2 on the shared CPU)


PROFILES = {
    "tiny": FaceProfile(
        name="tiny",
        channels=32,
        blocks=2,
        components=8,
        epochs=60,
        batch=8,
        window=32,
        lr=3e-3,
        ensemble=1,
    ),
    "cpu": FaceProfile(name="cpu"),
    "gpu": FaceProfile(name="gpu", channels=192, blocks=4, epochs=300),
}


def profile(name: str | FaceProfile, **overrides: object) -> FaceProfile:
    """The named profile (or the given one), with fields overridden."""
    base = lookup("face", PROFILES, name)
    return replace(base, **overrides) if overrides else base  # type: ignore[arg-type]
