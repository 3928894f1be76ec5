"""The product-path sync measure and the pose-stabilised LMD, on known signals."""

from __future__ import annotations

import numpy as np

from pipeline.face import landmarks as lm
from pipeline.face.evaluate import best_lag, canonical_lips
from pipeline.face.product import envelope, summarise_sync


def delayed(signal: np.ndarray, frames: int) -> np.ndarray:
    return np.concatenate([np.full(frames, signal[0]), signal[: len(signal) - frames]])


def test_a_late_mouth_is_measured_late_and_a_lipsync_ceiling_scores_higher() -> None:
    rng = np.random.default_rng(0)
    clips = []
    for seed in range(4):
        env = np.convolve(rng.random(120), np.ones(4) / 4, mode="same")
        mouth = delayed(env, 2) + 0.05 * rng.standard_normal(120)
        lag, scores = best_lag(env, mouth)
        clips.append({"lag": lag, "lag_scores": scores})
        assert lag == 2, seed
    summary = summarise_sync(clips)
    assert summary["lag_frames"] == 2 and summary["lag_abs_mean_per_clip"] == 2
    assert summary["corr"] > 0.9 > summary["corr_lag0"]


def test_the_envelope_floors_silence_and_follows_the_level() -> None:
    rate, fps = 16000, 25.0
    t = np.arange(rate * 2) / rate
    loud = np.where(t < 1.0, 0.5, 0.0) * np.sin(2 * np.pi * 200 * t)
    env = envelope(loud.astype(np.float32), rate, 50, fps)
    assert env[:25].min() > env[25:].max() + 39  # speech 40 dB over the silent floor
    assert np.ptp(env[25:]) < 1e-6  # all silence sits on the floor, whatever its level


def test_pose_stabilised_lips_do_not_count_head_pose() -> None:
    rng = np.random.default_rng(1)
    face = rng.random((478, 2)).astype(np.float32) * 100 + 100
    reference = lm.reference_stable(face[None])
    angle, scale, shift = 0.1, 1.2, np.array([15.0, -7.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = (face @ rot.T + shift).astype(np.float32)  # same mouth, other head pose
    plain = np.linalg.norm(lm.normalised_lips(turned) - lm.normalised_lips(face), axis=-1)
    stable = canonical_lips(turned[None], reference) - canonical_lips(face[None], reference)
    assert plain.mean() > 0.05  # today's LMD counts the turn as mouth error
    assert np.abs(stable).max() < 1e-4
