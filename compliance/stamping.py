"""``stamp``: the single function every export path calls (R8-R13, R15).

labels (visible + audible) -> invisible watermark (frames + audio) -> encode (H.264/AAC
MP4 with the AIGC tag) -> read the AIGC tag back -> C2PA sign -> atomic move into place.
The returned record holds every id the content registry links (R15).

Two stamping profiles (``profile_settings``): ``standard`` for every render, and
``qa_answer`` for a Q&A avatar's answer clips and a live show's clips, which carry the
same labels, watermark, AIGC tag and C2PA manifest but no audible notice: the conversation
plays a separately stamped notice clip once at its start and the server serves no answer
before it; a live show airs its notice clip first and again at a set interval (R26).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from . import aigc, audio_watermark, media, provenance
from .keys import SigningKeys
from .labels import Labeler, LabelOptions, notice_audio
from .payload import PayloadCodec
from .progress import Progress
from .watermark import VideoWatermarkOptions, embed_frame


@dataclass(frozen=True)
class ComplianceSettings:
    """Everything the compliance library needs from the deployment."""

    signing_dir: Path  # C2PA signer chain, key and root
    watermark_keys: tuple[tuple[str, bytes], ...]  # newest first; older ones still verify
    producer: str = "DHF"  # AIGC ContentProducer code of this service
    labels: LabelOptions = field(default_factory=LabelOptions)
    video: VideoWatermarkOptions = field(default_factory=VideoWatermarkOptions)
    audio_rate: int = 44100  # sample rate of the exported audio track
    limits: media.MediaLimits = field(default_factory=media.MediaLimits)  # what verify reads

    @property
    def keys(self) -> SigningKeys:
        return SigningKeys(Path(self.signing_dir))

    def codec(self) -> PayloadCodec:
        return PayloadCodec(self.watermark_keys)

    def audio_key(self, key: bytes) -> bytes:
        return hashlib.sha256(b"dhf-audio-wm1" + key).digest()


STANDARD = "standard"  # every render: labels, audible notice, watermark, AIGC tag, C2PA
QA_ANSWER = "qa_answer"  # a Q&A answer clip: all of the above but the audible notice (R26)
PROFILES = (STANDARD, QA_ANSWER)


def profile_settings(settings: ComplianceSettings, profile: str) -> ComplianceSettings:
    """``settings`` for a stamping profile. ``qa_answer`` only drops the audible notice
    (R9): a conversation says it once, before its first answer (R26); the visible label
    and mark (R8), the AIGC tag (R11), C2PA (R12) and the watermarks (R13) stay."""
    if profile == STANDARD:
        return settings
    if profile == QA_ANSWER:
        return replace(settings, labels=replace(settings.labels, notice="none"))
    raise ValueError(f"unknown stamping profile {profile!r}: one of {PROFILES}")


@dataclass(frozen=True)
class ContentSpec:
    content_id: str  # our id of this output; also the AIGC ProduceID
    watermark_id: str  # 16 hex digits carried by the invisible watermark


@dataclass(frozen=True)
class StampRecord:
    """What the registry stores about one stamped file (R15)."""

    content_id: str
    produce_id: str
    watermark_id: str
    manifest_id: str
    manifest: bytes
    aigc: str
    sha256: str
    duration_s: float


def stamp(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    content: ContentSpec,
    settings: ComplianceSettings,
    progress: Progress | None = None,
) -> StampRecord:
    """Label, watermark, encode, tag and sign ``source`` into ``output``."""
    report = progress or (lambda fraction, stage: None)
    facts = media.video_facts(source)
    bits = settings.codec().encode(content.watermark_id)
    wm_key = settings.watermark_keys[0][1]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dhf-stamp-", dir=output.parent) as tmp:
        work = Path(tmp)
        report(0.02, "audio")
        lead_frames = _audio_track(source, work / "audio.wav", bits, wm_key, facts, settings)
        aigc_value = aigc.build(
            settings.producer, content.content_id, content.watermark_id, settings.keys
        )
        encoded = work / "encoded.mp4"
        _video_track(
            source,
            encoded,
            work / "audio.wav",
            bits,
            lead_frames,
            facts,
            settings,
            {aigc.KEY: aigc_value},
            report,
        )
        label = aigc.read(encoded, settings.keys)
        if label is None or not (label.schema_ok and label.signature_ok):
            raise RuntimeError("the AIGC tag did not survive encoding (is use_metadata_tags set?)")
        report(0.95, "signing")
        manifest = provenance.manifest_for(content.content_id, content.watermark_id)
        signed = work / "signed.mp4"
        manifest_id, manifest_bytes = provenance.sign_mp4(encoded, signed, manifest, settings.keys)
        digest = hashlib.sha256(signed.read_bytes()).hexdigest()
        os.replace(signed, output)
    report(1.0, "stamped")
    return StampRecord(
        content_id=content.content_id,
        produce_id=content.content_id,
        watermark_id=content.watermark_id,
        manifest_id=manifest_id,
        manifest=manifest_bytes,
        aigc=aigc_value,
        sha256=digest,
        duration_s=(facts.frames + lead_frames) / facts.frame_rate,
    )


def stamp_audio(
    samples: npt.NDArray[Any], sample_rate: int, watermark_id: str, settings: ComplianceSettings
) -> npt.NDArray[Any]:
    """An audio-only clip stamped as AI audio the way a render's track is: the audible notice
    of ``settings.labels`` (R9) before it, and the audio watermark carrying ``watermark_id``
    (R13) over the whole. Float32 mono at ``sample_rate``; a plain WAV has no AIGC tag or
    C2PA manifest, so the caller registers ``watermark_id`` (R15) for verification."""
    bits = settings.codec().encode(watermark_id)
    notice = notice_audio(sample_rate, settings.labels)
    track = np.concatenate([notice, np.asarray(samples, np.float32)])
    key = settings.audio_key(settings.watermark_keys[0][1])
    return audio_watermark.embed(track, sample_rate, bits, key)


def _audio_track(
    source: str | os.PathLike[str],
    wav: Path,
    bits: npt.NDArray[Any],
    key: bytes,
    facts: media.MediaInfo,
    settings: ComplianceSettings,
) -> int:
    """Write notice + source audio, watermarked; return the video frames the notice spans."""
    rate = settings.audio_rate
    notice = notice_audio(rate, settings.labels)
    lead_frames = math.ceil(len(notice) / rate * facts.frame_rate)
    lead = np.zeros(int(round(lead_frames / facts.frame_rate * rate)), np.float32)
    lead[: len(notice)] = notice
    body = media.audio(source, rate)
    expected = int(round(facts.frames / facts.frame_rate * rate))
    body = np.pad(body, (0, max(0, expected - len(body))))  # silent track for mute sources
    track = np.concatenate([lead, body])
    marked = audio_watermark.embed(track, rate, bits, settings.audio_key(key))
    media.write_wav(wav, marked, rate)
    return lead_frames


def _video_track(
    source: str | os.PathLike[str],
    out: Path,
    wav: Path,
    bits: npt.NDArray[Any],
    lead_frames: int,
    facts: media.MediaInfo,
    settings: ComplianceSettings,
    metadata: dict[str, str],
    report: Progress,
) -> None:
    labeler = Labeler(*facts.frame_size, settings.labels)
    writer = media.FrameWriter(out, facts.frame_size, facts.frame_rate, wav, metadata)
    total = max(facts.frames + lead_frames, 1)
    index = 0

    def emit(rgb: npt.NDArray[Any]) -> None:
        nonlocal index
        labelled = labeler.apply(rgb, index / facts.frame_rate)
        writer.write(embed_frame(cv2.cvtColor(labelled, cv2.COLOR_RGB2BGR), bits, settings.video))
        index += 1
        if index % 25 == 0:
            report(0.05 + 0.9 * index / total, "labels+watermark+encode")

    try:
        for n, rgb in enumerate(media.frames(source)):
            for _ in range(lead_frames if n == 0 else 0):
                emit(rgb)  # the opening frame holds while the audible notice plays
            emit(rgb)
    finally:
        writer.close()
