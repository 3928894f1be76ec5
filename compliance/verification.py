"""``verify``: what a file says about itself, and what our marks say about it (R16).

Reads the C2PA manifest (state, signer, assertions), the AIGC tag, and decodes the
invisible watermark from frames and audio. The verdict is one of ``ai_generated_by_us``
(our manifest is valid, or our watermark decodes), ``tampered`` (our manifest is present
but fails validation) or ``unknown`` (nothing of ours found). It never calls a file
authentic. Resolving ids to registry rows and consent status is the caller's job.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import aigc, audio_watermark, media, provenance
from .payload import Decision
from .stamping import ComplianceSettings
from .watermark import decode_video


@dataclass(frozen=True)
class WatermarkResult:
    found: bool
    watermark_id: str | None
    confidence: float
    p_value: float
    video: Decision | None
    audio: Decision | None


@dataclass(frozen=True)
class Verification:
    verdict: str
    c2pa: provenance.C2paReport | None
    aigc: aigc.AigcLabel | None
    watermark: WatermarkResult
    content_id: str | None  # from the manifest, when it is ours and readable

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _video_decision(path: Path, settings: ComplianceSettings) -> Decision | None:
    facts = media.video_facts(path)
    every = max(1, facts.frames // settings.video.decode_frames)
    frames = list(media.frames(path, fmt="bgr24", every=every))
    return decode_video(frames, settings.codec(), settings.video).decision


def _audio_decision(path: Path, settings: ComplianceSettings) -> Decision | None:
    rate = settings.audio_rate
    samples = media.audio(path, rate)
    if len(samples) < rate:  # under a second: nothing to decide on
        return None
    codec = settings.codec()
    best: Decision | None = None
    for _, key in settings.watermark_keys:
        soft = audio_watermark.detect(samples, rate, codec.n_bits, settings.audio_key(key))
        scale = max(float(abs(soft).max()), 1e-12)
        decision = codec.decode(soft / scale, attempts=len(settings.watermark_keys))
        if decision.found:
            return decision
        best = best or decision
    return best


def watermark(path: Path, settings: ComplianceSettings) -> WatermarkResult:
    try:
        video = _video_decision(path, settings)
    except ValueError:  # no video stream
        video = None
    audio = _audio_decision(path, settings)
    found = [d for d in (video, audio) if d is not None and d.found]
    if found:
        ids = {d.watermark_id for d in found}
        best = min(found, key=lambda d: d.p_value)
        # two independent tracks agreeing multiply their chance bounds
        p_value = (
            found[0].p_value * found[1].p_value
            if len(found) == 2 and len(ids) == 1
            else best.p_value
        )
        return WatermarkResult(True, best.watermark_id, best.confidence, p_value, video, audio)
    confidence = max((d.confidence for d in (video, audio) if d is not None), default=0.0)
    return WatermarkResult(False, None, confidence, 1.0, video, audio)


def verify(path: str | os.PathLike[str], settings: ComplianceSettings) -> Verification:
    path = Path(path)
    manifest = provenance.read(path, settings.keys)
    try:
        label = aigc.read(path, settings.keys)
    except Exception:  # not a container PyAV can read: no label
        label = None
    try:
        mark = watermark(path, settings)
    except Exception:  # undecodable media carries no readable mark
        mark = WatermarkResult(False, None, 0.0, 1.0, None, None)
    ours = manifest is not None and manifest.ours
    if ours and manifest is not None and manifest.state == "Invalid":
        verdict = "tampered"
    elif ours or mark.found:
        verdict = "ai_generated_by_us"
    else:
        verdict = "unknown"
    content_id = manifest.content_id if ours and manifest is not None else None
    return Verification(verdict, manifest, label, mark, content_id)
