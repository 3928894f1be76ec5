"""Checking a stored upload (the ``probe_upload`` job, cpu queue).

Uploads are stored encrypted as they arrive (``studio``, ``voice`` and ``consent``
services); this job decrypts one to a private temp file, probes it within the media
limits, checks training footage for one usable face and for the person who consented
(R4), and stores the facts and the verdict (``valid`` / ``invalid`` with reasons).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import current_app

from compliance.audit import EventTag
from compliance.media import MediaError, MediaLimitExceeded, probe
from pipeline.media import video_problems

from . import jobs
from .audit import record_event
from .extensions import db
from .jobs import Progress
from .models import Job, Subject, Upload, UploadStatus
from .ownership import get_referenced
from .registry import media_limits
from .storage import subject_key, vault

UNREADABLE = "unreadable: not a readable audio/video file; upload an MP4 or MOV recording"


@jobs.job("probe_upload", queue="cpu", target=Upload)
def probe_upload(job: Job, report: Progress) -> dict[str, Any]:
    """Decrypt an upload to a private temp file, probe it, store facts and verdict."""
    upload = db.session.get(Upload, job.target_id)
    if upload is None:
        raise LookupError(f"upload {job.target_id} is gone")
    report(0.1, "decrypting")
    with tempfile.TemporaryDirectory(prefix="dhf-probe-") as tmp:
        path = vault().export(subject_key(upload), upload.blob_id, Path(tmp) / "media")
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
    upload.status = UploadStatus.INVALID if problems else UploadStatus.VALID
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
    subject = get_referenced(Subject, subject_key(upload))
    found = binding.check_arrival(subject, training_faces=faces)
    record_event(
        EventTag.CONSENT_BINDING,
        actor_id=upload.owner_id,
        data={
            "upload": upload.id,
            "reasons": [str(r) for r in found.reasons],
            "scores": found.scores,
        },
    )
    return [f"{r}: {binding.MESSAGES[r]}" for r in found.reasons if r not in binding.REVIEW]


def _training_video_problems(path: Path) -> list[str]:
    """One face, big and sharp enough, head pose, light, length (pipeline.face.validate)."""
    from pipeline.face.validate import Limits, training_video_problems

    limits = Limits(min_seconds=float(current_app.config["TRAINING_VIDEO_MIN_SECONDS"]))
    found = training_video_problems(path, limits, media_limits())
    return [f"{p.code}: {p.message}" for p in found]
