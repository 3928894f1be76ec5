r"""Background jobs: the registry of job kinds, submitting them, and running them.

Every kind of job is one decorated function::

    @jobs.job("render", queue="gpu", target=Render, likeness=True, on_failure=_give_back)
    def render(job: Job, report: Progress) -> dict[str, Any]: ...

The decorator records the kind (queue, timeout, retries, what ``target_id`` names,
whether it uses a likeness, what to undo after the last failed attempt) and turns the
body into the RQ entry point ``render(job_id)``. ``submit("render", owner, target)``
creates the ``jobs`` row and enqueues that function once the transaction commits.
Inside the worker the body runs under :func:`running`: KYC and consent are re-checked
before it starts and whenever a new stage begins, progress goes to the row (the truth)
and to RQ's ``job.meta``. Long jobs split into :func:`stage`\s that a retry skips once
done. Every job is retry-safe: re-running it from the start gives the same end state.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_app_context
from rq import get_current_job
from sqlalchemy import select, union, update
from sqlalchemy.exc import IntegrityError

from compliance.audit import EventTag
from compliance.progress import Progress

from . import likeness
from . import queue as q
from .audit import record_event
from .errors import Conflict
from .extensions import db
from .models import (
    Avatar,
    AvatarStatus,
    Job,
    JobStatus,
    Render,
    RenderStatus,
    Subject,
    Upload,
    utcnow,
)

JobBody = Callable[[Job, Progress], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    """How one kind of job runs. ``timeout``/``retries`` of None take the queue's defaults
    from the config (``JOB_TIMEOUT_CPU``/``JOB_TIMEOUT_GPU``, ``JOB_RETRIES``)."""

    name: str
    func: Callable[[str], dict[str, Any]]  # the RQ entry point, f(job_id)
    queue: str  # "gpu" or "cpu"
    target: type  # the model ``jobs.target_id`` names: Upload, Avatar, Render, ...
    likeness: bool  # trains on or renders a face/voice: needs KYC and verified consent
    on_failure: Callable[[Job], None] | None = None  # after the last attempt failed
    timeout: int | None = None
    retries: int | None = None
    on_cancel: Callable[[Job], None] | None = None  # after it was stopped (gate, user)

    def spec(self) -> q.JobSpec:
        cfg = current_app.config
        timeout = self.timeout or int(cfg[f"JOB_TIMEOUT_{self.queue.upper()}"])
        retries = int(cfg["JOB_RETRIES"]) if self.retries is None else self.retries
        return q.JobSpec(self.func, self.queue, timeout, retries)


KINDS: dict[str, JobKind] = {}


def job(
    name: str,
    *,
    queue: str,
    target: type,
    likeness: bool = False,
    on_failure: Callable[[Job], None] | None = None,
    timeout: int | None = None,
    retries: int | None = None,
    on_cancel: Callable[[Job], None] | None = None,
) -> Callable[[JobBody], Callable[[str], dict[str, Any]]]:
    """Register ``body(job, report)`` as the job kind ``name``; returns its RQ entry point
    ``f(job_id)``, which runs the body under :func:`running` and returns its result (or
    ``{"status": "canceled"}`` when the job may not run or was stopped)."""

    def register(body: JobBody) -> Callable[[str], dict[str, Any]]:
        @functools.wraps(body)
        def run(job_id: str) -> dict[str, Any]:
            result: dict[str, Any] = {"status": "canceled"}
            with running(job_id) as started:
                if started is not None:
                    result = body(*started)
            return result

        if name in KINDS and KINDS[name].func.__qualname__ != run.__qualname__:
            raise ValueError(f"job kind {name!r} is registered twice")
        KINDS[name] = JobKind(
            name, run, queue, target, likeness, on_failure, timeout, retries, on_cancel
        )
        return run

    return register


def kind(name: str) -> JobKind:
    if name not in KINDS:
        raise LookupError(f"no job kind {name!r}; registered: {', '.join(sorted(KINDS))}")
    return KINDS[name]


def redis() -> Any:
    ext = current_app.extensions
    if "dhf_redis" not in ext:
        ext["dhf_redis"] = q.connect(current_app.config["REDIS_URL"])
    return ext["dhf_redis"]


def submit(name: str, owner_id: str, target_id: str, *, enqueue: bool = True) -> Job:
    """Create the job row and enqueue it once the transaction commits.

    Refuses a second active job of the same kind for the same target (409). With
    ``enqueue=False`` the caller runs it in-process (operator CLI) instead of a worker.
    """
    spec = kind(name).spec()
    row = Job(
        owner_id=owner_id,
        kind=name,
        queue=spec.queue,
        target_id=target_id,
        active_key=f"{name}:{target_id}",
    )
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            f"A {name} job for {target_id} is already running: wait for it to finish.",
            code="job_active",
        ) from None
    record_event(EventTag.JOB_ENQUEUED, actor_id=owner_id, data={"job": row.id, "kind": name})
    if enqueue:
        q.enqueue_after_commit(db.session(), redis(), spec, row.id, row.id)
    return row


def run_inline(row: Job) -> dict[str, Any]:
    """Run a submitted job in this process (operators' CLI), as a worker would."""
    return kind(row.kind).func(row.id)


# -- running inside the worker -----------------------------------------------------------


_worker_app: Flask | None = None


def use_app(app: Flask) -> None:
    """Set the app that job functions run under (``dhf worker`` does this once)."""
    global _worker_app
    _worker_app = app


def app() -> Flask:
    """The app for this job: the caller's (tests), the worker's, else one from the env."""
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined]
    if _worker_app is None:
        from . import create_app  # not at import time: never build the app on import

        use_app(create_app())
    assert _worker_app is not None
    return _worker_app


class Canceled(Exception):
    """The job may not go on: consent withdrawn, KYC lapsed, avatar frozen or user cancel."""


def subject_of(row: Job) -> tuple[Subject, Avatar | None] | None:
    """The person a job works on and the avatar, from its target (``JobKind.target``):
    an avatar itself, else the avatar the target belongs to (``avatar_id``), if any."""
    target = db.session.get(kind(row.kind).target, row.target_id)
    if target is None:
        return None
    avatar = target if isinstance(target, Avatar) else None
    if avatar is None and getattr(target, "avatar_id", None):
        avatar = db.session.get(Avatar, target.avatar_id)
    subject_id = getattr(target, "subject_id", None) or (avatar.subject_id if avatar else None)
    subject = db.session.get(Subject, subject_id) if subject_id else None
    return (subject, avatar) if subject is not None else None


def gate(row: Job) -> None:
    """Re-check, before each stage, that this job may still use the person's likeness.

    Every job stops once its subject's consent is withdrawn (or the user canceled it);
    kinds that train or render (``JobKind.likeness``) also need KYC, verified consent and
    an avatar that is not frozen.
    """
    # read the status another process may have set, without dropping this job's edits
    if db.session.scalar(select(Job.status).where(Job.id == row.id)) == JobStatus.CANCELED:
        raise Canceled("canceled")
    found = subject_of(row)
    if found is None:
        raise Canceled("target_gone")
    reason = likeness.blocked(*found)
    if reason == "consent_revoked" or (reason and kind(row.kind).likeness):
        raise Canceled(reason)


def _end(row: Job, status: JobStatus, error: str | None = None) -> None:
    row.status, row.active_key, row.ended_at = status, None, utcnow()
    if error is not None:
        row.error = error


def _end_canceled(row: Job, reason: str) -> None:
    db.session.rollback()  # reloads the row: whoever canceled it already said why
    if row.status != JobStatus.CANCELED:
        _end(row, JobStatus.CANCELED, f"canceled: {reason}")
    record_event(EventTag.JOB_CANCELED, data={"job": row.id, "reason": reason})
    if (undo := kind(row.kind).on_cancel) is not None:
        undo(row)
    db.session.commit()


def _end_failed(row: Job, exc: Exception, last_attempt: bool) -> None:
    """After an exception: ``retrying``, or on the last attempt ``failed`` and the kind's
    ``on_failure`` (give credits back, mark the avatar), in one commit."""
    db.session.rollback()
    error = _without_paths("".join(traceback.format_exception_only(exc)).strip())
    if not last_attempt:
        row.status, row.error = JobStatus.RETRYING, error
    else:
        _end(row, JobStatus.FAILED, error)
        record_event(EventTag.JOB_FAILED, data={"job": row.id, "error": error})
        if (undo := kind(row.kind).on_failure) is not None:
            undo(row)
    db.session.commit()


@contextlib.contextmanager
def running(job_id: str) -> Iterator[tuple[Job, Progress] | None]:
    """Gate the job, mark it started, hand out a progress reporter, record the outcome.

    Yields ``None`` when the job may not start (see :func:`job`).
    ``report(progress, stage)`` persists progress and re-runs :func:`gate` whenever a new
    stage begins, so a withdrawal stops the job at the next stage boundary. A canceled
    job ends quietly (status ``canceled``, no retry) and leaves nothing half-written:
    stages write to temporary files and commit their outputs only at the end.
    """
    with app().app_context():
        row = db.session.get(Job, job_id)
        if row is None:
            raise LookupError(f"job {job_id} has no database row")
        try:
            gate(row)
        except Canceled as exc:
            _end_canceled(row, str(exc))
            yield None
            return
        rq_job = get_current_job()
        current = {"stage": row.stage}
        row.status, row.started_at, row.error = JobStatus.STARTED, utcnow(), None
        row.attempts += 1
        db.session.commit()

        def report(progress: float, stage: str) -> None:
            if stage != current["stage"]:
                gate(row)
                current["stage"] = stage
            row.progress, row.stage = round(min(max(progress, 0.0), 1.0), 4), stage
            db.session.commit()
            if rq_job is not None:
                rq_job.meta.update(progress=row.progress, stage=stage)
                rq_job.save_meta()

        try:
            yield row, report
        except Canceled as exc:
            _end_canceled(row, str(exc))
            return
        except Exception as exc:
            _end_failed(row, exc, last_attempt=not getattr(rq_job, "retries_left", 0))
            raise
        _end(row, JobStatus.FINISHED)
        row.progress, row.stage = 1.0, "done"
        target = kind(row.kind).target.__name__.lower()  # "avatar", "render", "upload"
        record_event(
            EventTag.JOB_FINISHED, data={"job": row.id, "kind": row.kind, target: row.target_id}
        )
        db.session.commit()


def _without_paths(message: str) -> str:
    """A job error for its owner: internal temp and instance paths become ``<file>``."""
    roots = {tempfile.gettempdir(), current_app.instance_path}
    for root in sorted(roots, key=len, reverse=True):
        message = re.sub(re.escape(root) + r"[^\s'\"()]*", "<file>", message)
    return message


def span(report: Progress, start: float, end: float, stage: str) -> Progress:
    """A pipeline progress callback mapped onto ``[start, end]`` of the job, one stage."""

    def inner(fraction: float, message: str) -> None:
        report(start + (end - start) * min(max(fraction, 0.0), 1.0), f"{stage}: {message}")

    return inner


# -- stages of long jobs ------------------------------------------------------------------


@dataclass
class Stages:
    """The resumable stages of one job, in ``work`` (``<WORK_DIR>/<job id>``).

    ``stages.run(name, start, end, step)`` runs ``step(folder, progress)`` in a clean
    ``work/<name>`` folder unless a ``<name>.done`` marker says an earlier attempt already
    finished it; the marker is written only after the step returns, so a crash or a killed
    worker redoes just the interrupted stage. Progress is reported as ``[start, end]`` of
    the job under the stage's name (which also re-checks consent: :func:`running`).
    """

    work: Path
    report: Progress

    def run(
        self,
        name: str,
        start: float,
        end: float,
        step: Callable[[Path, Progress], None],
        *,
        folder: Path | None = None,
    ) -> Path:
        out = folder or self.work / name
        marker = self.work / f"{name}.done"
        self.report(start, name)
        if marker.exists():
            return out
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        began = time.perf_counter()
        step(out, span(self.report, start, end, name))
        seconds = round(time.perf_counter() - began, 1)
        marker.write_text(json.dumps({"at": utcnow().isoformat(), "s": seconds}))
        return out

    def timings(self) -> dict[str, float]:
        """Wall seconds of each finished stage (for the quality report)."""
        markers = sorted(self.work.glob("*.done"))
        return {p.stem: json.loads(p.read_text())["s"] for p in markers}


def cancel_for_subject(subject_id: str) -> list[str]:
    """Stop all work on a subject's likeness: cancel every queued, retrying or running
    job (their ids are returned), unfinished renders and their avatars.

    Running jobs see the cancellation at their next stage boundary (:func:`gate`).
    """
    avatars = select(Avatar.id).where(Avatar.subject_id == subject_id)
    unfinished = (RenderStatus.QUEUED, RenderStatus.RENDERING)
    db.session.execute(
        update(Render)
        .where(Render.avatar_id.in_(avatars), Render.status.in_(unfinished))
        .values(status=RenderStatus.CANCELED)
    )
    db.session.execute(
        update(Avatar).where(Avatar.subject_id == subject_id).values(status=AvatarStatus.REVOKED)
    )
    targets = union(
        select(Upload.id).where(Upload.subject_id == subject_id),
        avatars,
        select(Render.id).where(Render.avatar_id.in_(avatars)),
    )
    active = select(Job).where(Job.target_id.in_(targets), Job.status.in_(JobStatus.active()))
    canceled = []
    for row in db.session.scalars(active):
        _end(row, JobStatus.CANCELED, "canceled: consent_revoked")
        canceled.append(row.id)
    return canceled
