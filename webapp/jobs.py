"""Background jobs: submitting them (after the commit) and the thin RQ job functions.

A job function takes ids, re-loads state from the database inside an app context,
does its work through ``pipeline`` stages that hand each other files, and reports
progress to both the ``jobs`` row and ``rq``'s ``job.meta``. The row is the truth.
Every function is retry-safe: re-running it from the start gives the same end state.
"""

from __future__ import annotations

import contextlib
import functools
import re
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_app_context
from rq import get_current_job
from sqlalchemy import select, union, update
from sqlalchemy.exc import IntegrityError

from compliance.audit import EventTag
from compliance.media import MediaError, MediaLimitExceeded, probe
from pipeline import queue as q
from pipeline.media import video_problems

from . import likeness
from .audit import record_event
from .errors import Conflict
from .extensions import db
from .models import Avatar, Job, Render, Subject, Upload, utcnow
from .registry import media_limits

Progress = Callable[[float, str], None]
UNREADABLE = "unreadable: not a readable audio/video file; upload an MP4 or MOV recording"


def spec(kind: str) -> q.JobSpec:
    cfg = current_app.config
    cpu, gpu, retries = cfg["JOB_TIMEOUT_CPU"], cfg["JOB_TIMEOUT_GPU"], cfg["JOB_RETRIES"]
    specs = {
        "probe_upload": q.JobSpec("webapp.jobs.probe_upload", "cpu", cpu, retries),
        "train_avatar": q.JobSpec("webapp.studio.tasks.train_avatar", "gpu", gpu, retries),
        "render": q.JobSpec("webapp.studio.tasks.render", "gpu", gpu, retries),
    }
    return specs[kind]


def redis() -> Any:
    ext = current_app.extensions
    if "dhf_redis" not in ext:
        ext["dhf_redis"] = q.connect(current_app.config["REDIS_URL"])
    return ext["dhf_redis"]


def submit(kind: str, owner_id: str, target_id: str, *, enqueue: bool = True) -> Job:
    """Create the job row and enqueue it once the transaction commits.

    Refuses a second active job of the same kind for the same target (409). With
    ``enqueue=False`` the caller runs it in-process (operator CLI) instead of a worker.
    """
    job_spec = spec(kind)
    job = Job(
        owner_id=owner_id,
        kind=kind,
        queue=job_spec.queue,
        target_id=target_id,
        active_key=f"{kind}:{target_id}",
    )
    db.session.add(job)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            f"A {kind} job for {target_id} is already running: wait for it to finish.",
            code="job_active",
        ) from None
    record_event(EventTag.JOB_ENQUEUED, actor_id=owner_id, data={"job": job.id, "kind": kind})
    if enqueue:
        q.enqueue_after_commit(db.session(), redis(), job_spec, job.id, job.id)
    return job


# -- running inside the worker -----------------------------------------------------------


_worker_app: Flask | None = None


def use_app(app: Flask) -> None:
    """Set the app that job functions run under (``dhf worker`` does this once)."""
    global _worker_app
    _worker_app = app


def _app() -> Flask:
    """The app for this job: the caller's (tests), the worker's, else one from the env."""
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
    if _worker_app is None:
        from . import create_app  # not at import time: never build the app on import

        use_app(create_app())
    assert _worker_app is not None
    return _worker_app


# Jobs that train on or render a person's likeness: they need KYC and verified consent.
LIKENESS_KINDS = frozenset({"train_avatar", "render"})


class Canceled(Exception):
    """The job may not go on: consent withdrawn, KYC lapsed, avatar frozen or user cancel."""


def subject_of(job: Job) -> tuple[Subject, Avatar | None] | None:
    """The person a job works on (through its upload, avatar or render) and the avatar."""
    target = db.session.get(Upload, job.target_id) or db.session.get(Avatar, job.target_id)
    if target is None and (render := db.session.get(Render, job.target_id)) is not None:
        target = db.session.get(Avatar, render.avatar_id)
    if target is None:
        return None
    avatar = target if isinstance(target, Avatar) else None
    return db.session.get(Subject, target.subject_id), avatar


def gate(job: Job) -> None:
    """Re-check, before each stage, that this job may still use the person's likeness.

    Every job stops once its subject's consent is withdrawn (or the user canceled it);
    jobs that train or render (``spec.likeness``) also need KYC and verified consent.
    """
    # read the status another process may have set, without dropping this job's edits
    if db.session.scalar(select(Job.status).where(Job.id == job.id)) == "canceled":
        raise Canceled("canceled")
    found = subject_of(job)
    if found is None:
        raise Canceled("target_gone")
    subject, avatar = found
    reason = likeness.blocked(subject, avatar)
    if reason == "consent_revoked" or (reason and job.kind in LIKENESS_KINDS):
        raise Canceled(reason)


def _end_canceled(job: Job, reason: str) -> None:
    db.session.rollback()  # reloads the row: whoever canceled it already said why
    if job.status != "canceled":
        job.status, job.active_key, job.ended_at = "canceled", None, utcnow()
        job.error = f"canceled: {reason}"
    record_event(EventTag.JOB_CANCELED, data={"job": job.id, "reason": reason})
    db.session.commit()


@contextlib.contextmanager
def running(job_id: str) -> Iterator[tuple[Job, Progress] | None]:
    """Gate the job, mark it started, hand out a progress reporter, record the outcome.

    Yields ``None`` when the job may not start (see :func:`job_function`).
    ``report(progress, stage)`` persists progress and re-runs :func:`gate` whenever a new
    stage begins, so a withdrawal stops the job at the next stage boundary. A canceled
    job ends quietly (status ``canceled``, no retry) and leaves nothing half-written:
    stages write to temporary files and commit their outputs only at the end.
    """
    with _app().app_context():
        job = db.session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} has no database row")
        try:
            gate(job)
        except Canceled as exc:
            _end_canceled(job, str(exc))
            yield None
            return
        rq_job = get_current_job()
        current = {"stage": job.stage}
        job.status, job.started_at, job.error = "started", utcnow(), None
        job.attempts += 1
        db.session.commit()

        def report(progress: float, stage: str) -> None:
            if stage != current["stage"]:
                gate(job)
                current["stage"] = stage
            job.progress, job.stage = round(min(max(progress, 0.0), 1.0), 4), stage
            db.session.commit()
            if rq_job is not None:
                rq_job.meta.update(progress=job.progress, stage=stage)
                rq_job.save_meta()

        try:
            yield job, report
        except Canceled as exc:
            _end_canceled(job, str(exc))
            return
        except Exception as exc:
            db.session.rollback()
            retries_left = getattr(rq_job, "retries_left", 0) or 0
            job.status = "retrying" if retries_left > 0 else "failed"
            job.error = _without_paths("".join(traceback.format_exception_only(exc)).strip())
            if job.status == "failed":
                job.active_key, job.ended_at = None, utcnow()
                record_event(EventTag.JOB_FAILED, data={"job": job.id, "error": job.error})
            db.session.commit()
            raise
        job.status, job.progress, job.stage = "finished", 1.0, "done"
        job.active_key, job.ended_at = None, utcnow()
        record_event(EventTag.JOB_FINISHED, data={"job": job.id, "kind": job.kind})
        db.session.commit()


def _without_paths(message: str) -> str:
    """A job error for its owner: internal temp and instance paths become ``<file>``."""
    roots = {tempfile.gettempdir(), current_app.instance_path}
    for root in sorted(roots, key=len, reverse=True):
        message = re.sub(re.escape(root) + r"[^\s'\"()]*", "<file>", message)
    return message


JobBody = Callable[[Job, Progress], dict[str, Any]]


def job_function(body: JobBody) -> Callable[[str], dict[str, Any]]:
    """Turn ``body(job, report)`` into the RQ entry point ``f(job_id)`` run under
    :func:`running`; a job that may not run (or stops) returns ``{"status": "canceled"}``."""

    @functools.wraps(body)
    def run(job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = {"status": "canceled"}
        with running(job_id) as started:
            if started is not None:
                result = body(*started)
        return result

    return run


def cancel_for_subject(subject_id: str) -> list[str]:
    """Stop all work on a subject's likeness: cancel every queued, retrying or running
    job (their ids are returned), unfinished renders and their avatars.

    Running jobs see the cancellation at their next stage boundary (:func:`gate`).
    """
    avatars = select(Avatar.id).where(Avatar.subject_id == subject_id)
    db.session.execute(
        update(Render)
        .where(Render.avatar_id.in_(avatars), Render.status.in_(("queued", "rendering")))
        .values(status="canceled")
    )
    db.session.execute(
        update(Avatar).where(Avatar.subject_id == subject_id).values(status="revoked")
    )
    targets = union(
        select(Upload.id).where(Upload.subject_id == subject_id),
        avatars,
        select(Render.id).where(Render.avatar_id.in_(avatars)),
    )
    active = select(Job).where(
        Job.target_id.in_(targets), Job.status.in_(("queued", "retrying", "started"))
    )
    canceled = []
    for job in db.session.scalars(active):
        job.status, job.active_key, job.ended_at = "canceled", None, utcnow()
        job.error = "canceled: consent_revoked"
        canceled.append(job.id)
    return canceled


@job_function
def probe_upload(job: Job, report: Progress) -> dict[str, Any]:
    """Decrypt an upload to a private temp file, probe it, store facts and verdict."""
    from .storage import vault

    upload = db.session.get(Upload, job.target_id)
    if upload is None:
        raise LookupError(f"upload {job.target_id} is gone")
    report(0.1, "decrypting")
    with tempfile.TemporaryDirectory(prefix="dhf-probe-") as tmp:
        path = vault().export(upload.subject_id, upload.blob_id, Path(tmp) / "media")
        report(0.5, "probing")
        try:
            info = probe(path, media_limits())
            problems = video_problems(info) if upload.kind.endswith("video") else []
        except MediaLimitExceeded as exc:
            info, problems = None, [f"media_limit: {exc.message}"]
        except MediaError:  # its message names the private temp file: say it plainly
            info, problems = None, [UNREADABLE]
        if upload.kind == "training_video" and not problems:
            report(0.6, "checking the face")
            problems = _training_video_problems(path)
        if upload.kind == "training_video" and not problems:
            report(0.8, "comparing with the person who consented")
            problems = _binding_problems(upload, path)
    upload.info = info.as_dict() if info else {}
    upload.reasons = problems
    upload.status = "invalid" if problems else "valid"
    record_event(
        EventTag.UPLOAD_VALIDATED,
        actor_id=upload.owner_id,
        data={"upload": upload.id, "status": upload.status},
    )
    job.result = {"upload_id": upload.id, "status": upload.status, "reasons": problems}
    report(0.9, "saving")
    return dict(job.result)


def _binding_problems(upload: Upload, path: Path) -> list[str]:
    """The footage must show the person of the consent recording and the KYC selfie (R4)."""
    from pipeline.consent_media import face_embeddings, sample_frames

    from .consent import binding

    faces = face_embeddings(sample_frames(path, binding.FOOTAGE_FACES))
    binding.keep_template(upload, faces=faces)
    if len(faces) < binding.MIN_FACES:
        return [f"face_unverifiable: {binding.MESSAGES['face_unverifiable']}"]
    subject = db.session.get(Subject, upload.subject_id)
    found = binding.check_arrival(subject, training_faces=faces)
    record_event(EventTag.CONSENT_BINDING, actor_id=upload.owner_id,
                 data={"upload": upload.id, "reasons": [str(r) for r in found.reasons],
                       "scores": found.scores})  # fmt: skip
    return [f"{r}: {binding.MESSAGES[r]}" for r in found.reasons if r not in binding.REVIEW]


def _training_video_problems(path: Path) -> list[str]:
    """One face, big and sharp enough, head pose, light, length (pipeline.face.validate)."""
    from pipeline.face.validate import Limits, training_video_problems

    limits = Limits(min_seconds=float(current_app.config["TRAINING_VIDEO_MIN_SECONDS"]))
    found = training_video_problems(path, limits, media_limits())
    return [f"{p.code}: {p.message}" for p in found]
