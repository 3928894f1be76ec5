"""Background jobs: submitting them (after the commit) and the thin RQ job functions.

A job function takes ids, re-loads state from the database inside an app context,
does its work through ``pipeline`` stages that hand each other files, and reports
progress to both the ``jobs`` row and ``rq``'s ``job.meta``. The row is the truth.
Every function is retry-safe: re-running it from the start gives the same end state.
"""

from __future__ import annotations

import contextlib
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_app_context
from rq import get_current_job
from sqlalchemy.exc import IntegrityError

from compliance.audit import EventTag
from compliance.media import MediaError, probe
from pipeline import queue as q
from pipeline.media import video_problems

from .audit import record_event
from .errors import Conflict
from .extensions import db
from .models import Job, Upload, utcnow

Progress = Callable[[float, str], None]


def spec(kind: str) -> q.JobSpec:
    cfg = current_app.config
    specs = {
        "probe_upload": q.JobSpec(
            "webapp.jobs.probe_upload", "cpu", cfg["JOB_TIMEOUT_CPU"], cfg["JOB_RETRIES"]
        ),
    }
    return specs[kind]


def redis() -> Any:
    ext = current_app.extensions
    if "dhf_redis" not in ext:
        ext["dhf_redis"] = q.connect(current_app.config["REDIS_URL"])
    return ext["dhf_redis"]


def submit(kind: str, owner_id: str, target_id: str) -> Job:
    """Create the job row and enqueue it once the transaction commits.

    Refuses a second active job of the same kind for the same target (409).
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


@contextlib.contextmanager
def running(job_id: str) -> Iterator[tuple[Job, Progress]]:
    """Mark the job started, hand out a progress reporter, record the outcome."""
    with _app().app_context():
        job = db.session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} has no database row")
        rq_job = get_current_job()
        job.status, job.started_at, job.error = "started", utcnow(), None
        job.attempts += 1
        db.session.commit()

        def report(progress: float, stage: str) -> None:
            job.progress, job.stage = round(min(max(progress, 0.0), 1.0), 4), stage
            db.session.commit()
            if rq_job is not None:
                rq_job.meta.update(progress=job.progress, stage=stage)
                rq_job.save_meta()

        try:
            yield job, report
        except Exception as exc:
            db.session.rollback()
            retries_left = getattr(rq_job, "retries_left", 0) or 0
            job.status = "retrying" if retries_left > 0 else "failed"
            job.error = "".join(traceback.format_exception_only(exc)).strip()
            if job.status == "failed":
                job.active_key, job.ended_at = None, utcnow()
                record_event(EventTag.JOB_FAILED, data={"job": job.id, "error": job.error})
            db.session.commit()
            raise
        job.status, job.progress, job.stage = "finished", 1.0, "done"
        job.active_key, job.ended_at = None, utcnow()
        record_event(EventTag.JOB_FINISHED, data={"job": job.id, "kind": job.kind})
        db.session.commit()


def probe_upload(job_id: str) -> dict[str, Any]:
    """Decrypt an upload to a private temp file, probe it, store facts and verdict."""
    from .storage import vault

    with running(job_id) as (job, report):
        upload = db.session.get(Upload, job.target_id)
        if upload is None:
            raise LookupError(f"upload {job.target_id} is gone")
        report(0.1, "decrypting")
        with tempfile.TemporaryDirectory(prefix="dhf-probe-") as tmp:
            path = vault().export(upload.subject_id, upload.blob_id, Path(tmp) / "media")
            report(0.5, "probing")
            try:
                info = probe(path)
                problems = video_problems(info) if upload.kind.endswith("video") else []
            except MediaError as exc:
                info, problems = None, [f"unreadable: {exc}"]
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
