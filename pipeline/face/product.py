"""Product-path evaluation: the face driven by the cloned voice, as customers get it.

The real-audio protocol (``evaluate.py``) drives the face with the person's own recorded
speech; a customer's video is driven by the cloned voice (piper -> WORLD conversion), a
different sound. Here voice and face are trained on the same person (the footage's audio
and transcripts are the voice takes), every held-out transcript is said by the cloned voice
and rendered through face and composite (the frames ``render_video`` would stamp), and the
audio-visual sync of the result is measured:

- envelope: each video frame's speech level in dB, floored at 40 dB under the clip's peak
  (silence carries no timing, only its edges do);
- sync: the Pearson correlation between the mouth opening re-detected in the rendered
  frames (FaceMesh, inner-lip gap / IOD) and that envelope, at every lag -6..6 frames;
  ``lag`` is the best lag of the scores summed over clips (positive: the mouth is late),
  ``corr`` the mean per-clip correlation at that lag, ``corr_lag0`` at lag 0.

The same figures for the real held-out videos with their own audio are the ceiling (how
well a real mouth follows its own speech envelope by this measure), and the looped template
(no lip sync) under the cloned speech is the floor.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from compliance import media

from . import features
from . import landmarks as lm
from .composite import CompositeOptions, Compositor
from .evaluate import MAX_LAG, best_lag, clips_in, log, track, track_clip
from .render import FaceRig, render_frames, template_indices

FLOOR_DB = 40.0  # the envelope's range under the clip's peak level


def voice_takes(train_dir: Path, dest: Path) -> Path:
    """The footage's audio (16 kHz WAV) and transcripts as the voice's takes in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for clip in clips_in(train_dir):
        text = clip.with_suffix(".txt")
        wav = dest / f"{clip.stem}.wav"
        if not text.exists() or wav.exists():
            continue
        media.write_wav(wav, media.audio(clip, 16000), 16000)
        (dest / f"{clip.stem}.txt").write_text(text.read_text())
    return dest


def train_voice(train_dir: Path, work: Path, profile: str, reuse: bool) -> dict[str, Any]:
    """Train the cloned voice on the footage's own audio into ``work/voice``."""
    from pipeline.voice.train import train

    out = work / "voice"
    if reuse and (out / "voice.pt").exists():
        return {"voice_train_seconds": None, "voice_reused": True}
    takes = voice_takes(train_dir, work / "voice-takes")
    started = time.perf_counter()
    train(takes, out, profile, lambda f, m: log(f"voice {100 * f:.0f}%: {m}"))
    return {"voice_train_seconds": round(time.perf_counter() - started, 1)}


def envelope(samples: npt.NDArray[Any], rate: int, n_frames: int, fps: float) -> npt.NDArray[Any]:
    """Per-frame speech level (dB), floored ``FLOOR_DB`` under the peak."""
    level = features.energy_db(samples, rate, n_frames, fps)
    floored: npt.NDArray[Any] = np.maximum(level, level.max() - FLOOR_DB)
    return floored


def sync(points: npt.NDArray[Any], env: npt.NDArray[Any]) -> dict[str, Any]:
    """Mouth opening of tracked frames against the speech envelope: per-lag correlations."""
    lag, scores = best_lag(env, lm.opening(points))
    return {"lag": lag, "lag_scores": scores}


def summarise_sync(clips: list[dict[str, Any]]) -> dict[str, Any]:
    scores = np.array([c["lag_scores"] for c in clips])
    lag = int(np.argmax(scores.sum(0))) - MAX_LAG
    return {
        "lag_frames": lag,
        "corr": float(scores[:, lag + MAX_LAG].mean()),
        "corr_lag0": float(scores[:, MAX_LAG].mean()),
        "lag_abs_mean_per_clip": float(np.mean([abs(c["lag"]) for c in clips])),
    }


def product_path(
    avatar: FaceRig, voice_pt: Path, heldout: list[Path], composite: CompositeOptions
) -> dict[str, Any]:
    """Sync of cloned voice -> face -> composite, with the real videos and the template."""
    from pipeline.voice.model import VoiceModel
    from pipeline.voice.synthesize import synthesize

    voice = VoiceModel.load(voice_pt)
    groups: dict[str, list[dict[str, Any]]] = {"product": [], "real": [], "template": []}
    seconds = {"voice": 0.0, "face": 0.0}
    compositor = Compositor(avatar, composite)
    for n, clip in enumerate(heldout):
        text = clip.with_suffix(".txt").read_text().strip()
        started = time.perf_counter()
        samples, rate = synthesize(voice, text)
        voiced = time.perf_counter()
        frames = [compositor.apply(f) for f in render_frames(avatar, samples, rate)]
        seconds["voice"] += voiced - started
        seconds["face"] += time.perf_counter() - voiced
        env = envelope(samples, rate, len(frames), avatar.fps)
        groups["product"].append(sync(track(frames), env))
        floor = [avatar.template_frame(int(i)) for i in template_indices(avatar.manifest, len(env))]
        groups["template"].append(sync(track([compositor.apply(f) for f in floor]), env))
        real = track_clip(clip)
        real_env = envelope(media.audio(clip, features.RATE), features.RATE, len(real), avatar.fps)
        groups["real"].append(sync(real, real_env))
        log(
            f"product path {n + 1}/{len(heldout)} {clip.name}: lag {groups['product'][-1]['lag']}"
            f" (real {groups['real'][-1]['lag']})"
        )
    compositor.close()
    result: dict[str, Any] = {name: summarise_sync(c) for name, c in groups.items()}
    result["corr_ratio_to_real"] = result["product"]["corr"] / result["real"]["corr"]
    result["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    result["voice"] = os.fspath(voice_pt)
    return result
