"""The studio's jobs (gpu queue): ``train_avatar`` and ``render``.

Both are registered with :func:`webapp.jobs.job`, which re-checks KYC, consent and the
avatar's freeze at every stage boundary. They are retry-safe:

- ``train_avatar`` runs as :class:`webapp.jobs.Stages` in ``<WORK_DIR>/<job id>``:
  sources -> face ingest -> voice -> face model, each skipped by a retry once finished.
  The trained model is stored encrypted in one step at the end.
- ``render`` is synthesize -> render and stamp -> speech check (quarantine) -> publish,
  in a temporary folder; publishing (vault, registry, ledger) is one transaction at the
  end, so a retry starts over without charging twice.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flask import current_app

from compliance.audit import EventTag
from compliance.labels import LabelOptions, notice_audio
from compliance.payload import new_watermark_id
from compliance.stamping import QA_ANSWER, STANDARD, ContentSpec, profile_settings

from .. import jobs, registry, webhooks
from ..audit import record_event
from ..billing import ledger
from ..consent import binding
from ..errors import Forbidden
from ..extensions import db
from ..jobs import Canceled, Progress, Stages, span
from ..likeness import latest_consent
from ..models import Avatar, AvatarStatus, Job, Render, RenderStatus, Upload
from ..ownership import get_referenced
from ..storage import vault
from . import service

MODEL_PARTS = ("voice", "face")  # folders of the packed model


# -- training -----------------------------------------------------------------------------


def _training_failed(job: Job) -> None:
    avatar = get_referenced(Avatar, job.target_id)
    avatar.status = AvatarStatus.FAILED
    webhooks.notify(avatar.owner_id, "avatar.training.failed", {"avatar_id": avatar.id})


def _training_stopped(job: Job) -> None:
    """Stopped by the gate (a freeze, a suspension, the user): the avatar can be trained
    again later; a withdrawal has already marked it revoked."""
    avatar = db.session.get(Avatar, job.target_id)
    if avatar is not None and avatar.status == AvatarStatus.TRAINING:
        avatar.status = AvatarStatus.DRAFT


@jobs.job(
    "train_avatar",
    queue="gpu",
    target=Avatar,
    likeness=True,
    on_failure=_training_failed,
    on_cancel=_training_stopped,
)
def train_avatar(job: Job, report: Progress) -> dict[str, Any]:
    avatar = get_referenced(Avatar, job.target_id)
    video, samples = service.training_inputs(avatar)
    _one_person(avatar)
    profile = current_app.config["TRAINING_PROFILE"]
    stages = Stages(Path(current_app.config["WORK_DIR"]) / job.id, report)
    stages.work.mkdir(parents=True, exist_ok=True)
    _train_models(stages, avatar, video, samples, profile)
    report(0.9, "quality report")
    return _store_model(stages, avatar, profile)


def _train_models(
    stages: Stages, avatar: Avatar, video: Upload, samples: list[Upload], profile: str
) -> None:
    """sources -> face ingest -> voice model -> face model, each resumable."""
    from pipeline.face import ingest as face_ingest
    from pipeline.face import train as face_train
    from pipeline.voice import train as voice_train

    work = stages.work

    def sources(out: Path, progress: Progress) -> None:
        vault().export(avatar.subject_id, video.blob_id, out / "video.mp4")
        for n, sample in enumerate(sorted(samples, key=lambda s: s.created_at)):
            vault().export(avatar.subject_id, sample.blob_id, out / f"take{n:03d}.wav")
            (out / f"take{n:03d}.txt").write_text(sample.text or "")

    def face(out: Path, progress: Progress) -> None:
        face_ingest.ingest([work / "sources" / "video.mp4"], out, profile, progress)

    def voice(out: Path, progress: Progress) -> None:
        voice_train.train(work / "sources", out, profile, progress)

    def face_model(out: Path, progress: Progress) -> None:
        face_train.train(work / "face", out, profile, progress)

    stages.run("sources", 0.01, 0.02, sources)
    stages.run("face", 0.02, 0.25, face)
    stages.run("voice", 0.25, 0.55, voice)
    stages.run("face-model", 0.55, 0.9, face_model, folder=work / "face" / "model")


def _store_model(stages: Stages, avatar: Avatar, profile: str) -> dict[str, Any]:
    """Quality report and model stored encrypted in one step; the plaintext work removed."""
    began = time.perf_counter()
    quality = _quality(stages.work, avatar)
    model_blob = _pack(stages.work, avatar.subject_id)
    pack_s = round(time.perf_counter() - began, 1)
    quality["timings_s"] = {**stages.timings(), "quality+pack": pack_s}
    avatar.model_blob_id, avatar.quality, avatar.status = model_blob, quality, AvatarStatus.READY
    record_event(
        EventTag.AVATAR_TRAINED,
        actor_id=avatar.owner_id,
        data={"avatar": avatar.id, "model": model_blob, "profile": profile},
    )
    summary = quality["summary"]
    webhooks.notify(
        avatar.owner_id,
        "avatar.training.finished",
        {"avatar_id": avatar.id, "status": "ready", "summary": summary},
    )
    db.session.commit()
    shutil.rmtree(stages.work, ignore_errors=True)  # plaintext sources and intermediates
    return {
        "avatar_id": avatar.id,
        "profile": profile,
        "summary": summary,
        "timings_s": quality["timings_s"],
    }


def _one_person(avatar: Avatar) -> None:
    """The gate of R4 in the worker: every pair of the person's inputs, compared again.
    A failed pair stops the job (canceled with the reason, not retried)."""
    try:
        found = binding.require_one_person(avatar.subject)
    except Forbidden as exc:
        avatar.status = AvatarStatus.DRAFT
        record_event(
            EventTag.CONSENT_BINDING,
            actor_id=avatar.owner_id,
            data={"avatar": avatar.id, "refused": exc.code},
        )
        db.session.commit()
        raise Canceled(exc.code) from None
    record_event(
        EventTag.CONSENT_BINDING,
        actor_id=avatar.owner_id,
        data={"avatar": avatar.id, "scores": found.scores},
    )


def _quality(work: Path, avatar: Avatar) -> dict[str, Any]:
    """Both models' reports, the headline numbers, and the plots stored encrypted."""
    voice = json.loads((work / "voice" / "report.json").read_text())
    face = json.loads((work / "face" / "model" / "report.json").read_text())
    plots = {}
    for name, path in (
        ("voice.png", work / "voice" / "report.png"),
        ("face_loss.png", work / "face" / "model" / "loss.png"),
    ):
        if path.exists():
            with open(path, "rb") as fh:
                plots[name] = vault().put(avatar.subject_id, fh)[0]
    summary = {
        "voice sentences": voice.get("sentences"),
        "voice training (s)": voice.get("train_s"),
        "face frames": face.get("frames"),
        "face training (s)": face.get("train_seconds"),
        "mouth-opening correlation (held back)": round(face["model"]["opening_corr"], 3),
        "same, untrained model": round(face["untrained"]["opening_corr"], 3),
    }
    return {
        "summary": summary,
        "voice": {k: v for k, v in voice.items() if k != "history"},
        "face": {k: v for k, v in face.items() if k != "history"},
        "plots": sorted(plots),
        "plot_blobs": plots,
    }


def _pack(work: Path, subject_id: str) -> str:
    """The trained avatar (voice model, face template + model) as one encrypted blob."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for part in MODEL_PARTS:
            tar.add(work / part, arcname=part)
    buffer.seek(0)
    return vault().put(subject_id, buffer)[0]


def model_dir(avatar: Avatar, target: Path) -> Path:
    """The avatar's trained model, fetched from the vault and unpacked into ``target`` (a
    render's temporary folder). Nothing is cached beside it: a worker may run on another
    machine than the web process whose withdrawal shreds the subject, so no plaintext
    model may outlive the job that unpacked it."""
    if avatar.model_blob_id is None:
        raise LookupError(f"Avatar {avatar.id} has no trained model.")
    target.mkdir(parents=True)
    data = vault().read(avatar.subject_id, avatar.model_blob_id)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(target, filter="data")
    return target


# -- rendering ----------------------------------------------------------------------------


MAX_RECHECK_S = 600.0  # a render is at most RENDER_MAX_CHARS of speech: far below this
STYLE = {"real2d": "real", "cartoon2d": "cartoon"}  # API style -> the compositor's


def composite_options(options: dict[str, Any]) -> Any:
    """The compositor's options from a render's stored (already validated) options."""
    from pipeline.face.composite import CompositeOptions

    background = options.get("background", "original")
    return CompositeOptions(
        framing=options.get("framing", "half"),
        background=None if background == "original" else _rgb(background),
        tone=options.get("tone", "natural"),
        style=STYLE[options.get("style", "real2d")],
    )


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def speech_error(video: Path, script: str, labels: LabelOptions) -> float:
    """Word error rate of the approved script in what Whisper hears in a rendered file.

    The audible AI notice that opens every render is cut off first (heard together, Whisper
    often transcribes the notice and drops the cloned voice after it); any of its words left
    at the start are set aside by ``script_error_rate``."""
    from compliance import media
    from pipeline import asr
    from pipeline.bundled import script_error_rate

    samples = media.audio(video, 16000, MAX_RECHECK_S)
    lead = len(notice_audio(16000, labels))  # the notice and its pause open every render
    heard = asr.transcribe(samples[lead:], 16000)  # Whisper tends to stop after the notice
    notice = labels.notice_text if labels.notice == "speech" else ""
    said = asr.spoken_words
    return script_error_rate(said(notice), said(script), said(heard.text))


def _render_failed(job: Job) -> None:  # the credits come back
    row = get_referenced(Render, job.target_id)
    row.status = RenderStatus.FAILED
    ledger.release(row)
    webhooks.notify(row.owner_id, "render.failed", {"render_id": row.id})


@dataclass
class _Rendered:
    """A stamped render in a temporary folder, not yet published."""

    path: Path
    stamped: Any  # compliance.stamping's record of the labels, watermark and manifest
    wer: float
    timings: dict[str, float]


def _render_canceled(job: Job) -> None:
    """Stopped before it was published (a freeze, a suspension, a withdrawal): the render
    ends canceled and its credits come back."""
    row = db.session.get(Render, job.target_id)
    if row is not None and row.status in (RenderStatus.QUEUED, RenderStatus.RENDERING):
        row.status = RenderStatus.CANCELED
        ledger.release(row)


@jobs.job(
    "render",
    queue="gpu",
    target=Render,
    likeness=True,
    on_failure=_render_failed,
    on_cancel=_render_canceled,
)
def render(job: Job, report: Progress) -> dict[str, Any]:
    row = get_referenced(Render, job.target_id)
    row.status = RenderStatus.RENDERING
    with tempfile.TemporaryDirectory(prefix="dhf-render-") as tmp:
        rendered = _render_and_check(row, Path(tmp) / "render.mp4", report)
        if rendered.wer > float(current_app.config["RENDER_MAX_WER"]):
            job.result = _quarantine(row, rendered)
            return dict(job.result)
        report(0.95, "delivering")
        job.result = _publish(row, rendered)
    return dict(job.result)


def _render_and_check(row: Render, out: Path, report: Progress) -> _Rendered:
    """Synthesize the script in the avatar's voice, render and stamp the video, and hear
    it back (speech check)."""
    from pipeline.face.render import FaceRig, render_video
    from pipeline.voice.synthesize import synthesize

    began, timings = time.perf_counter(), {}

    def lap(name: str) -> None:
        nonlocal began
        timings[name], began = round(time.perf_counter() - began, 2), time.perf_counter()

    model = model_dir(get_referenced(Avatar, row.avatar_id), out.parent / "model")
    report(0.02, "voice")
    samples, rate = synthesize(model / "voice" / "voice.pt", row.script)
    lap("voice")
    report(0.2, "face")
    settings = profile_settings(registry.compliance_settings(), stamping_profile(row))
    content = ContentSpec(uuid.uuid4().hex, new_watermark_id())
    stamped = render_video(
        FaceRig.load(model / "face"),
        samples,
        rate,
        out,
        content,
        settings,
        composite_options(row.options),
        span(report, 0.2, 0.85, "render"),
    )
    lap("face+composite+stamp")
    report(0.86, "speech check")
    wer = speech_error(out, row.script, settings.labels)
    lap("speech check")
    return _Rendered(out, stamped, wer, timings)


def stamping_profile(row: Render) -> str:
    """The row's stamping profile, from the purpose the server gave it when it created the
    row: a Q&A answer clip has no audible notice (its conversation plays the notice first,
    R26); every other render, whatever its options, is stamped with every label."""
    return QA_ANSWER if (row.options or {}).get("purpose") == "qa_answer" else STANDARD


def _quarantine(row: Render, rendered: _Rendered) -> dict[str, Any]:
    """The file says something other than the approved script: hold it, give back the
    credits, tell the owner. The file is not kept."""
    wer = round(rendered.wer, 3)
    row.status = RenderStatus.QUARANTINED
    ledger.release(row)
    record_event(
        EventTag.RENDER_QUARANTINED, actor_id=row.owner_id, data={"render": row.id, "wer": wer}
    )
    result = {"render_id": row.id, "status": "quarantined", "wer": wer}
    webhooks.notify(row.owner_id, "render.quarantined", result)
    return result


def _publish(row: Render, rendered: _Rendered) -> dict[str, Any]:
    """Store the file encrypted, register its ids, charge the credits, tell the owner."""
    avatar = get_referenced(Avatar, row.avatar_id)
    stamped = rendered.stamped
    with open(rendered.path, "rb") as fh:
        blob_id = vault().put(avatar.subject_id, fh)[0]
    consent = latest_consent(avatar.subject_id)
    registry.register(
        stamped,
        owner_id=row.owner_id,
        avatar_id=avatar.id,
        subject_id=avatar.subject_id,
        render_id=row.id,
        consent_record_id=consent.id if consent else None,
    )
    row.content_id, row.output_blob_id = stamped.content_id, blob_id
    row.status = RenderStatus.READY
    ledger.settle(row, int(np.ceil(stamped.duration_s)))
    wer = round(rendered.wer, 3)
    record_event(
        EventTag.RENDER_PUBLISHED,
        actor_id=row.owner_id,
        data={
            "render": row.id,
            "content": stamped.content_id,
            "watermark": stamped.watermark_id,
            "manifest": stamped.manifest_id,
            "wer": wer,
        },
    )
    result = {
        "render_id": row.id,
        "content_id": stamped.content_id,
        "wer": wer,
        "duration_s": round(stamped.duration_s, 2),
        "timings_s": rendered.timings,
    }
    webhooks.notify(row.owner_id, "render.finished", {**result, "status": "ready"})
    return result


def forget(subject_id: str, job_ids: list[str]) -> int:
    """Delete a subject's plaintext working files on this machine: the work folders of their
    canceled jobs and unpacked models an earlier version cached (revocation). Returns how
    many folders were removed."""
    work = Path(current_app.config["WORK_DIR"])
    folders = [work / "models" / subject_id, *(work / job_id for job_id in job_ids)]
    present = [f for f in folders if f.exists()]
    for folder in present:
        shutil.rmtree(folder, ignore_errors=True)
    return len(present)
