"""RQ tasks of the studio: ``train_avatar`` and ``render`` (gpu queue).

Both run under :func:`webapp.jobs.job_function`, which re-checks KYC and consent at
every stage boundary. They are retry-safe:

- ``train_avatar`` works in ``<WORK_DIR>/<job id>``, one sub-folder per stage, and marks a
  stage finished with a ``<stage>.done`` file only once its outputs are complete; a retry
  (after a crash or a killed worker) skips finished stages and redoes the interrupted one
  from a clean folder. The trained model is stored encrypted in one step at the end.
- ``render`` writes into a temporary folder and publishes (vault, registry, ledger) in
  one transaction at the end; a retry starts over without charging twice.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flask import current_app
from rq import get_current_job

from compliance.audit import EventTag
from compliance.labels import LabelOptions, notice_audio
from compliance.payload import new_watermark_id
from compliance.stamping import ContentSpec

from .. import registry, webhooks
from ..audit import record_event
from ..billing import ledger
from ..consent import binding
from ..errors import Forbidden
from ..extensions import db
from ..jobs import Canceled, Progress, job_function
from ..models import Avatar, ConsentRecord, Job, Render, Subject, utcnow
from ..storage import vault
from . import service

STYLE = {"real2d": "real", "cartoon2d": "cartoon"}
MODEL_PARTS = ("voice", "face")  # folders of the packed model


def _span(report: Progress, start: float, end: float, stage: str) -> Callable[[float, str], None]:
    """A pipeline progress callback mapped onto ``[start, end]`` of the job, one stage."""

    def inner(fraction: float, message: str) -> None:
        report(start + (end - start) * min(max(fraction, 0.0), 1.0), f"{stage}: {message}")

    return inner


def _stage(work: Path, name: str) -> Path | None:
    """The clean output folder of a stage still to run, or None when it already finished."""
    if (work / f"{name}.done").exists():
        return None
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _done(work: Path, name: str, began: float) -> None:
    """Mark a stage finished, keeping its wall time for the quality report."""
    seconds = round(time.perf_counter() - began, 1)
    (work / f"{name}.done").write_text(json.dumps({"at": utcnow().isoformat(), "s": seconds}))


def _timings(work: Path) -> dict[str, float]:
    return {p.stem: json.loads(p.read_text())["s"] for p in sorted(work.glob("*.done"))}


# -- training -----------------------------------------------------------------------------


def _on_last_failure(job: Job, cleanup: Callable[[], None]) -> None:
    """After an exception: on the job's last attempt, run ``cleanup`` and commit."""
    db.session.rollback()
    if not getattr(get_current_job(), "retries_left", 0):
        cleanup()
        db.session.commit()


@job_function
def train_avatar(job: Job, report: Progress) -> dict[str, Any]:
    try:
        return _train(job, report)
    except Canceled:
        raise
    except Exception:

        def failed() -> None:
            avatar = db.session.get(Avatar, job.target_id)
            avatar.status = "failed"
            webhooks.notify(avatar.owner_id, "avatar.training.failed", {"avatar_id": avatar.id})

        _on_last_failure(job, failed)
        raise


def _train(job: Job, report: Progress) -> dict[str, Any]:
    from pipeline.face import ingest as face_ingest
    from pipeline.face import train as face_train
    from pipeline.voice import train as voice_train
    from pipeline.voice.model import settings_for

    avatar = db.session.get(Avatar, job.target_id)
    video, samples = service.training_inputs(avatar)
    _one_person(avatar)
    profile = current_app.config["TRAINING_PROFILE"]
    work = Path(current_app.config["WORK_DIR"]) / job.id
    work.mkdir(parents=True, exist_ok=True)
    store = vault()

    report(0.01, "ingest")
    began = time.perf_counter()
    if (folder := _stage(work, "sources")) is not None:
        store.export(avatar.subject_id, video.blob_id, folder / "video.mp4")
        for n, sample in enumerate(sorted(samples, key=lambda s: s.created_at)):
            store.export(avatar.subject_id, sample.blob_id, folder / f"take{n:03d}.wav")
            (folder / f"take{n:03d}.txt").write_text(sample.text or "")
        _done(work, "sources", began)
    began = time.perf_counter()
    if (folder := _stage(work, "face")) is not None:
        face_ingest.ingest([work / "sources" / "video.mp4"], folder, profile,
                           _span(report, 0.02, 0.25, "ingest"))  # fmt: skip
        _done(work, "face", began)
    report(0.25, "voice")
    began = time.perf_counter()
    if (folder := _stage(work, "voice")) is not None:
        takes = voice_train.takes_in(work / "sources")
        voice_train.train(takes, folder, settings_for(profile), _span(report, 0.25, 0.55, "voice"))
        _done(work, "voice", began)
    report(0.55, "face")
    began = time.perf_counter()
    if not (work / "face-model.done").exists():
        face_train.train(work / "face", profile, None, _span(report, 0.55, 0.9, "face"))
        _done(work, "face-model", began)
    report(0.9, "quality report")
    began = time.perf_counter()
    quality = _quality(work, avatar)
    model_blob = _pack(work, avatar.subject_id)
    quality["timings_s"] = {**_timings(work), "quality+pack": round(time.perf_counter() - began, 1)}
    avatar.model_blob_id, avatar.quality, avatar.status = model_blob, quality, "ready"
    record_event(EventTag.JOB_FINISHED, actor_id=avatar.owner_id,
                 data={"avatar": avatar.id, "model": model_blob, "profile": profile})  # fmt: skip
    webhooks.notify(
        avatar.owner_id,
        "avatar.training.finished",
        {"avatar_id": avatar.id, "status": "ready", "summary": quality["summary"]},
    )
    db.session.commit()
    shutil.rmtree(work, ignore_errors=True)  # plaintext sources and intermediates
    return {"avatar_id": avatar.id, "profile": profile, "summary": quality["summary"],
            "timings_s": quality["timings_s"]}  # fmt: skip


def _one_person(avatar: Avatar) -> None:
    """The gate of R4 in the worker: every pair of the person's inputs, compared again.
    A failed pair stops the job (canceled with the reason, not retried)."""
    try:
        found = binding.require_one_person(avatar.subject)
    except Forbidden as exc:
        avatar.status = "draft"
        record_event(EventTag.CONSENT_BINDING, actor_id=avatar.owner_id,
                     data={"avatar": avatar.id, "refused": exc.code})  # fmt: skip
        db.session.commit()
        raise Canceled(exc.code) from None
    record_event(EventTag.CONSENT_BINDING, actor_id=avatar.owner_id,
                 data={"avatar": avatar.id, "scores": found.scores})  # fmt: skip


def _quality(work: Path, avatar: Avatar) -> dict[str, Any]:
    """Both models' reports, the headline numbers, and the plots stored encrypted."""
    voice = json.loads((work / "voice" / "report.json").read_text())
    face = json.loads((work / "face" / "model" / "report.json").read_text())
    plots = {}
    for name, path in (("voice.png", work / "voice" / "report.png"),
                       ("face_loss.png", work / "face" / "model" / "loss.png")):  # fmt: skip
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
    return {"summary": summary, "voice": {k: v for k, v in voice.items() if k != "history"},
            "face": {k: v for k, v in face.items() if k != "history"},
            "plots": sorted(plots), "plot_blobs": plots}  # fmt: skip


def _pack(work: Path, subject_id: str) -> str:
    """The trained avatar (voice model, face template + model) as one encrypted blob."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for part in MODEL_PARTS:
            tar.add(work / part, arcname=part)
    buffer.seek(0)
    return vault().put(subject_id, buffer)[0]


def model_dir(avatar: Avatar) -> Path:
    """The unpacked model of an avatar, cached per model blob (shredded with the subject)."""
    cache = Path(current_app.config["WORK_DIR"]) / "models" / avatar.subject_id
    target = cache / avatar.model_blob_id
    if not (target / "unpacked").exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        data = vault().read(avatar.subject_id, avatar.model_blob_id)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(target, filter="data")
        (target / "unpacked").touch()
    return target


# -- rendering ----------------------------------------------------------------------------


MAX_RECHECK_S = 600.0  # a render is at most RENDER_MAX_CHARS of speech: far below this


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


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


@job_function
def render(job: Job, report: Progress) -> dict[str, Any]:
    try:
        return _render(job, report)
    except Canceled:
        raise
    except Exception:

        def failed() -> None:  # the credits come back
            row = db.session.get(Render, job.target_id)
            row.status = "failed"
            ledger.release(row)
            webhooks.notify(row.owner_id, "render.failed", {"render_id": row.id})

        _on_last_failure(job, failed)
        raise


def _render(job: Job, report: Progress) -> dict[str, Any]:
    from pipeline.face.composite import Options
    from pipeline.face.render import Avatar as FaceAvatar
    from pipeline.face.render import render_video
    from pipeline.voice.synthesize import synthesize

    row = db.session.get(Render, job.target_id)
    avatar = db.session.get(Avatar, row.avatar_id)
    subject = db.session.get(Subject, avatar.subject_id)
    row.status = "rendering"
    report(0.02, "voice")
    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return round(clock[-1] - clock[-2], 2)

    model = model_dir(avatar)
    samples, rate = synthesize(model / "voice" / "voice.pt", row.script)
    timings = {"voice": lap()}
    report(0.2, "face")
    settings = registry.compliance_settings()
    options = row.options
    background = options.get("background", "original")
    composite = Options(
        framing=options.get("framing", "half"),
        background=None if background == "original" else _rgb(background),
        tone=options.get("tone", "natural"),
        style=STYLE[options.get("style", "real2d")],
    )
    content = ContentSpec(uuid.uuid4().hex, new_watermark_id())
    with tempfile.TemporaryDirectory(prefix="dhf-render-") as tmp:
        out = Path(tmp) / "render.mp4"
        stamped = render_video(FaceAvatar.load(model / "face"), samples, rate, out, content,
                               settings, composite, _span(report, 0.2, 0.85, "render"))  # fmt: skip
        timings["face+composite+stamp"] = lap()
        report(0.86, "speech check")
        wer = speech_error(out, row.script, settings.labels)
        timings["speech check"] = lap()
        if wer > float(current_app.config["RENDER_MAX_WER"]):
            row.status = "quarantined"
            ledger.release(row)
            record_event(EventTag.RENDER_CREATED, actor_id=row.owner_id,
                         data={"render": row.id, "quarantined": True,
                               "wer": round(wer, 3)})  # fmt: skip
            job.result = {"render_id": row.id, "status": "quarantined", "wer": round(wer, 3)}
            webhooks.notify(row.owner_id, "render.quarantined", dict(job.result))
            return dict(job.result)
        report(0.95, "delivering")
        with open(out, "rb") as fh:
            blob_id = vault().put(subject.id, fh)[0]
    consent = db.session.scalar(
        db.select(ConsentRecord).where(ConsentRecord.subject_id == subject.id)
        .order_by(ConsentRecord.created_at.desc()).limit(1)
    )  # fmt: skip
    registry.register(stamped, owner_id=row.owner_id, avatar_id=avatar.id,
                      subject_id=subject.id, render_id=row.id,
                      consent_record_id=consent.id if consent else None)  # fmt: skip
    row.content_id, row.output_blob_id, row.status = stamped.content_id, blob_id, "ready"
    ledger.settle(row, int(np.ceil(stamped.duration_s)))
    record_event(EventTag.RENDER_CREATED, actor_id=row.owner_id,
                 data={"render": row.id, "content": stamped.content_id,
                       "watermark": stamped.watermark_id, "manifest": stamped.manifest_id,
                       "wer": round(wer, 3)})  # fmt: skip
    job.result = {"render_id": row.id, "content_id": stamped.content_id, "wer": round(wer, 3),
                  "duration_s": round(stamped.duration_s, 2), "timings_s": timings}  # fmt: skip
    webhooks.notify(row.owner_id, "render.finished", {**job.result, "status": "ready"})
    return dict(job.result)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def forget(subject_id: str, job_ids: list[str]) -> int:
    """Delete a subject's plaintext working files: unpacked models and the work folders of
    their canceled jobs (revocation). Returns how many folders were removed."""
    work = Path(current_app.config["WORK_DIR"])
    folders = [work / "models" / subject_id, *(work / job_id for job_id in job_ids)]
    present = [f for f in folders if f.exists()]
    for folder in present:
        shutil.rmtree(folder, ignore_errors=True)
    return len(present)
