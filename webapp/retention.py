"""The retention schedule (R24): expired files are deleted, each deletion leaves a receipt.

Each kind of stored file has a retention in days (``RETENTION_*_DAYS``, README "Retention
schedule") counted from the moment it stopped being needed (see ``KINDS``). :func:`run`
finds the expired files, deletes their blobs from the vault (and their encrypted
templates, and a trained model's unpacked copy), stamps the row (``purged_at``; the row
stays as the record of what existed) and writes one ``retention:deleted`` audit event per
kind of file and subject: the deletion receipt, listing each file's id and SHA-256 (or
content id). Nothing an OPEN report names is deleted (a legal hold): a report on a render,
an avatar or a subject holds every file of that subject; one on an account holds its
holder's own KYC images. A subject whose consent was withdrawn has nothing left to delete
(its key was destroyed, with its own receipt).

The worker runs it daily on the ``cpu`` queue: :func:`schedule` puts the next run into
RQ's scheduled registry (``dhf worker`` runs the scheduler) under a job id made from its
date, so scheduling twice schedules once; each run first schedules the next day's.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVarTuple

from flask import current_app
from rq.exceptions import DuplicateJobError
from sqlalchemy import Select, func, select

from compliance.audit import EventTag

from . import queue as q
from .audit import record_event
from .extensions import db
from .models import (
    Avatar,
    AvatarStatus,
    ConsentRecord,
    ConsentStatus,
    IdentityCheck,
    KycStatus,
    Render,
    RenderStatus,
    Report,
    ReportStatus,
    Subject,
    Upload,
    utcnow,
)
from .qa import talk as qa_logs
from .reports.service import attachment_owner
from .storage import vault

JOB_PREFIX = "dhf-retention-"


@dataclass(frozen=True)
class Expired:
    """One file past its retention: the row, whose key encrypts it, what the receipt says."""

    row: Any
    kind: str
    subject_id: str | None  # None: an account holder's own KYC image, or a report's file
    key_owner: str  # the vault key the blob is encrypted under
    blobs: tuple[str, ...]
    receipt: dict[str, str]  # {"id": ..., "sha256" | "content_id" | "blob": ...}
    owner_id: str | None = None


@dataclass
class Summary:
    """What one run deleted (or, dry, would delete), per kind of file, and its receipts."""

    ran_at: datetime
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)  # expired but under a legal hold
    receipts: list[dict[str, Any]] = field(default_factory=list)
    stale_uploads_aborted: int = 0  # interrupted uploads cleared (S3 multipart, temp files)
    qa_logs: int = 0  # Q&A conversation log rows past DHF_QA_LOG_RETENTION_DAYS (deleted)

    def as_json(self) -> dict[str, Any]:
        return {
            "ran_at": self.ran_at.isoformat(timespec="seconds"),
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "held": self.held,
            "receipts": self.receipts,
            "stale_uploads_aborted": self.stale_uploads_aborted,
            "qa_logs": self.qa_logs,
        }


STALE_UPLOAD_S = 24 * 3600  # an unfinished upload this old was interrupted: aborted


def _days(name: str) -> timedelta:
    return timedelta(days=int(current_app.config[f"RETENTION_{name}_DAYS"]))


Row = TypeVarTuple("Row")


def _live_subject(query: Select[*Row], subject_column: Any) -> Select[*Row]:
    """Rows of subjects whose key still exists (a withdrawal already destroyed the rest)."""
    alive = select(Subject.id).where(Subject.key_destroyed_at.is_(None))
    return query.where(subject_column.is_(None) | subject_column.in_(alive))


def _uploads(kind: str, before: datetime) -> Select[Upload]:
    query = select(Upload).where(
        Upload.kind == kind, Upload.purged_at.is_(None), Upload.created_at < before
    )
    return _live_subject(query, Upload.subject_id)


def _upload(upload: Upload, kind: str) -> Expired:
    blobs = (upload.blob_id, *([upload.template_blob_id] if upload.template_blob_id else []))
    return Expired(
        upload,
        kind,
        upload.subject_id,
        upload.subject_id or upload.owner_id,
        blobs,
        {"id": upload.id, "sha256": upload.sha256},
        upload.owner_id,
    )


def consent_recordings(now: datetime) -> Iterable[Expired]:
    """Consent videos older than the retention that no longer prove a consent in force
    (rejected or superseded attempts); the proof of a verified one stays."""
    proof = select(ConsentRecord.recording_upload_id).where(
        ConsentRecord.status.in_((ConsentStatus.VERIFIED, ConsentStatus.NEEDS_REVIEW)),
        ConsentRecord.recording_upload_id.is_not(None),
    )
    query = _uploads("consent_video", now - _days("CONSENT_RECORDING")).where(
        Upload.id.not_in(proof)
    )
    return (_upload(u, "consent_recording") for u in db.session.scalars(query))


def _kyc_images(now: datetime, status: KycStatus, setting: str, kind: str) -> Iterable[Expired]:
    """KYC images counted from their check's decision (undecided checks keep theirs)."""
    decided = select(IdentityCheck.id).where(
        IdentityCheck.status == status, IdentityCheck.decided_at < now - _days(setting)
    )
    query = select(Upload).where(
        Upload.kind == "kyc_image",
        Upload.purged_at.is_(None),
        Upload.identity_check_id.in_(decided),
    )
    query = _live_subject(query, Upload.subject_id)
    return (_upload(u, kind) for u in db.session.scalars(query))


def kyc_images(now: datetime) -> Iterable[Expired]:
    return _kyc_images(now, KycStatus.VERIFIED, "KYC_IMAGE", "kyc_image")


def kyc_rejected_images(now: datetime) -> Iterable[Expired]:
    return _kyc_images(now, KycStatus.REJECTED, "KYC_REJECTED", "kyc_image_rejected")


def _training_sources(kind: str, setting: str, label: str, now: datetime) -> Iterable[Expired]:
    """Sources of an avatar that is not training right now (a running job keeps them)."""
    training = select(Avatar.id).where(Avatar.status == AvatarStatus.TRAINING)
    query = _uploads(kind, now - _days(setting)).where(
        Upload.avatar_id.is_(None) | Upload.avatar_id.not_in(training)
    )
    return (_upload(u, label) for u in db.session.scalars(query))


def voice_takes(now: datetime) -> Iterable[Expired]:
    return _training_sources("voice_sample", "VOICE_TAKE", "voice_take", now)


def training_videos(now: datetime) -> Iterable[Expired]:
    return _training_sources("training_video", "TRAINING_VIDEO", "training_video", now)


def trained_models(now: datetime) -> Iterable[Expired]:
    """A model whose avatar made nothing (and was not trained) within the retention."""
    last_render = (
        select(func.max(Render.created_at)).where(Render.avatar_id == Avatar.id).scalar_subquery()
    )
    last_use = func.coalesce(last_render, Avatar.created_at)
    query = select(Avatar).where(
        Avatar.model_blob_id.is_not(None),
        Avatar.model_purged_at.is_(None),
        Avatar.status != AvatarStatus.TRAINING,
        last_use < now - _days("TRAINED_MODEL"),
    )
    query = _live_subject(query, Avatar.subject_id)
    for avatar in db.session.scalars(query):
        quality = avatar.quality or {}
        blobs = (
            avatar.model_blob_id,
            *(quality.get("plot_blobs") or {}).values(),
            *(quality.get("sample_blobs") or {}).values(),  # the report's voice samples
        )
        yield Expired(
            avatar,
            "trained_model",
            avatar.subject_id,
            avatar.subject_id,
            tuple(blobs),
            {"id": avatar.id, "blob": avatar.model_blob_id or ""},
            avatar.owner_id,
        )


def _renders(now: datetime, status: RenderStatus, setting: str, kind: str) -> Iterable[Expired]:
    query = (
        select(Render, Avatar.subject_id)
        .join(Avatar, Render.avatar_id == Avatar.id)
        .where(
            Render.status == status,
            Render.output_blob_id.is_not(None),
            Render.purged_at.is_(None),
            Render.created_at < now - _days(setting),
        )
    )
    query = _live_subject(query, Avatar.subject_id)
    render: Render
    subject_id: str
    for render, subject_id in db.session.execute(query):
        assert render.output_blob_id is not None  # the query selects renders with a file
        yield Expired(
            render,
            kind,
            subject_id,
            subject_id,
            (render.output_blob_id,),
            {"id": render.id, "content_id": render.content_id or ""},
            render.owner_id,
        )


def quarantined_renders(now: datetime) -> Iterable[Expired]:
    return _renders(now, RenderStatus.QUARANTINED, "QUARANTINED_RENDER", "quarantined_render")


def rendered_outputs(now: datetime) -> Iterable[Expired]:
    return _renders(now, RenderStatus.READY, "RENDER", "render")


def report_attachments(now: datetime) -> Iterable[Expired]:
    """The file a reporter attached (encrypted under the report's own key), once decided."""
    query = select(Report).where(
        Report.status == ReportStatus.DECIDED,
        Report.attachment_blob_id.is_not(None),
        Report.attachment_purged_at.is_(None),
        Report.decided_at < now - _days("REPORT_ATTACHMENT"),
    )
    for report in db.session.scalars(query):
        yield Expired(
            report,
            "report_attachment",
            None,
            attachment_owner(report),
            (report.attachment_blob_id or "",),
            {"id": report.id, "blob": report.attachment_blob_id or ""},
        )


# kind -> the query of its expired files (the README's "Retention schedule" in code)
KINDS: dict[str, Callable[[datetime], Iterable[Expired]]] = {
    "consent_recording": consent_recordings,
    "kyc_image": kyc_images,
    "kyc_image_rejected": kyc_rejected_images,
    "voice_take": voice_takes,
    "training_video": training_videos,
    "trained_model": trained_models,
    "quarantined_render": quarantined_renders,
    "render": rendered_outputs,
    "report_attachment": report_attachments,
}


@dataclass(frozen=True)
class Holds:
    """What open reports name: resolved to subjects, plus accounts (their own KYC)."""

    subjects: frozenset[str]
    owners: frozenset[str]

    @classmethod
    def current(cls) -> Holds:
        reports = db.session.execute(
            select(Report.subject_id, Report.avatar_id, Report.render_id, Report.owner_id).where(
                Report.status == ReportStatus.OPEN
            )
        ).all()
        subjects = {r.subject_id for r in reports if r.subject_id}
        renders = {r.render_id for r in reports if r.render_id}
        avatars = {r.avatar_id for r in reports if r.avatar_id}
        if renders:
            avatars |= set(
                db.session.scalars(select(Render.avatar_id).where(Render.id.in_(renders)))
            )
        if avatars:
            subjects |= set(
                db.session.scalars(select(Avatar.subject_id).where(Avatar.id.in_(avatars)))
            )
        return cls(frozenset(subjects), frozenset(r.owner_id for r in reports if r.owner_id))

    def hold(self, item: Expired) -> bool:
        if item.kind == "report_attachment":
            return False  # only decided reports' files are candidates
        if item.subject_id is not None:
            return item.subject_id in self.subjects
        return item.owner_id in self.owners


def _purge(item: Expired, now: datetime) -> bool:
    """Delete the blobs and stamp the row; False when the file was already gone."""
    present = [vault().delete(item.key_owner, blob) for blob in item.blobs]
    row = item.row
    if isinstance(row, Avatar):
        row.model_purged_at = now
        unpacked = Path(current_app.config["WORK_DIR"]) / "models" / row.subject_id
        shutil.rmtree(unpacked / str(row.model_blob_id), ignore_errors=True)
    elif isinstance(row, Report):
        row.attachment_purged_at = now
    else:
        row.purged_at = now
    return bool(present and present[0])


def run(now: datetime | None = None, dry_run: bool = False) -> Summary:
    """Delete every expired file not under a legal hold; one receipt per kind and subject.

    With ``dry_run`` nothing is deleted or written: the summary says what would go."""
    now = now or utcnow()
    summary = Summary(now, dry_run)
    holds = Holds.current()
    for kind, find in KINDS.items():
        groups: dict[str | None, list[Expired]] = defaultdict(list)
        for item in find(now):
            if holds.hold(item):
                summary.held[kind] = summary.held.get(kind, 0) + 1
            else:
                groups[item.subject_id].append(item)
        for subject_id, items in groups.items():
            summary.deleted[kind] = summary.deleted.get(kind, 0) + len(items)
            summary.receipts.append(_receipt(kind, subject_id, items, now, dry_run))
    if not dry_run:  # no upload runs for a day: what is that old was interrupted
        summary.stale_uploads_aborted = vault().store.abort_stale_uploads(STALE_UPLOAD_S)
    summary.qa_logs = qa_logs.prune_logs(now, dry_run=dry_run)  # rows, not files: no receipt
    return summary


def _receipt(
    kind: str, subject_id: str | None, items: list[Expired], now: datetime, dry_run: bool
) -> dict[str, Any]:
    receipt: dict[str, Any] = {
        "kind": kind,
        "subject": subject_id,
        "count": len(items),
        "files": [item.receipt for item in items],
        "deleted_at": now.isoformat(timespec="seconds"),
    }
    if subject_id is None:
        receipt["owners"] = sorted({item.owner_id for item in items if item.owner_id})
    if dry_run:
        return receipt
    missing = [item.receipt["id"] for item in items if not _purge(item, now)]
    if missing:
        receipt["already_missing"] = missing
    event = record_event(EventTag.RETENTION_DELETED, data=receipt)
    db.session.commit()
    return {**receipt, "receipt_id": event.hash}


# -- the daily run ------------------------------------------------------------------------


def next_run(now: datetime) -> datetime:
    """The next ``RETENTION_RUN_HOUR`` o'clock UTC after ``now``."""
    now = now.astimezone(UTC)
    at = now.replace(
        hour=int(current_app.config["RETENTION_RUN_HOUR"]), minute=0, second=0, microsecond=0
    )
    return at if at > now else at + timedelta(days=1)


def job_id(at: datetime) -> str:
    return f"{JOB_PREFIX}{at:%Y%m%d}"


def schedule(connection: Any, now: datetime | None = None) -> str | None:
    """Schedule the next daily run on the ``cpu`` queue; its job id, or None when that day's
    run is already scheduled (so every worker may call this at start)."""
    at = next_run(now or utcnow())
    try:
        q.queue("cpu", connection).enqueue_at(
            at,
            daily,
            job_id=job_id(at),
            unique=True,
            job_timeout=int(current_app.config["JOB_TIMEOUT_CPU"]),
            result_ttl=8 * 24 * 3600,
            failure_ttl=30 * 24 * 3600,
        )
    except DuplicateJobError:
        return None
    return job_id(at)


def on_worker_start(connection: Any, queue_names: list[str]) -> str | None:
    """A worker that serves the ``cpu`` queue arms the daily run (once per day overall)."""
    return schedule(connection) if "cpu" in queue_names else None


def daily() -> dict[str, Any]:
    """The RQ entry point: schedule tomorrow's run first (a failure today must not end
    the schedule), then run."""
    from .jobs import app, redis

    with app().app_context():
        schedule(redis())
        return run().as_json()
