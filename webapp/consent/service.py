"""Subjects, consent links, passcodes, recording checks and revocation."""

from __future__ import annotations

import hashlib
import re
import secrets
import tempfile
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
from flask import current_app
from sqlalchemy import select

from compliance import media
from compliance.audit import EventTag
from compliance.consent import (
    PASSCODE_TTL,
    ConsentThresholds,
    Evidence,
    ProtectedTemplate,
    References,
    decide,
    new_passcode,
    statement,
)
from pipeline.consent_media import analyse, face_embeddings

from .. import jobs
from ..audit import record_event
from ..errors import Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..identity.self_hosted import selfie_template
from ..models import (
    ConsentRecord,
    IdentityCheck,
    ProtectedPerson,
    Subject,
    Upload,
    User,
    utcnow,
)
from ..storage import store, vault
from ..studio.tasks import forget
from . import notice


def thresholds() -> ConsentThresholds:
    cfg = current_app.config
    return ConsentThresholds(
        face_accept=float(cfg["CONSENT_FACE_ACCEPT"]),
        face_reject=float(cfg["CONSENT_FACE_REJECT"]),
        voice_accept=float(cfg["CONSENT_VOICE_ACCEPT"]),
        voice_reject=float(cfg["CONSENT_VOICE_REJECT"]),
        min_motion=float(cfg["CONSENT_MIN_MOTION"]),
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def create_subject(owner: User, display_name: str, relation: str) -> tuple[Subject, str]:
    """A person to depict and their single consent link token (shown once)."""
    if relation not in ("self", "other"):
        raise InvalidInput("relation must be 'self' or 'other'.", code="bad_relation")
    if not display_name.strip():
        raise InvalidInput("Give the person's display name.", code="missing_fields")
    subject = Subject(owner_id=owner.id, display_name=display_name.strip()[:120], relation=relation)
    db.session.add(subject)
    db.session.flush()
    token = secrets.token_urlsafe(32)
    db.session.add(ConsentRecord(subject_id=subject.id, token_sha256=_digest(token),
                                 notice_version=notice.VERSION, notice_sha256=notice.SHA256,
                                 scope=list(notice.USES)))  # fmt: skip
    db.session.commit()
    return subject, token


def record_for(token: str) -> ConsentRecord:
    record = db.session.scalar(
        select(ConsentRecord).where(ConsentRecord.token_sha256 == _digest(token))
    )
    if record is None:
        raise NotFound(
            "This consent link is not valid: ask for a new one.", code="bad_consent_link"
        )
    return record


def issue_passcode(record: ConsentRecord) -> tuple[str, str, datetime]:
    """A fresh one-time passcode (30 minutes) and the statement to read with it."""
    if record.status == "revoked":
        raise Forbidden("Consent was withdrawn with this link; it cannot be given again here.",
                        code="consent_revoked")  # fmt: skip
    subject = db.session.get(Subject, record.subject_id)
    if needs_own_identity(subject):
        raise Forbidden("Verify your own identity first: open your consent link in a browser.",
                        code="kyc_required")  # fmt: skip
    passcode = new_passcode()
    record.passcode_sha256 = _digest(passcode)
    record.passcode_expires_at = utcnow() + PASSCODE_TTL
    record.statement = statement(subject.display_name, passcode)
    db.session.commit()
    return passcode, record.statement, record.passcode_expires_at


def _identity(subject: Subject) -> IdentityCheck | None:
    """The verified KYC of the depicted person: the account holder's own for 'self'."""
    query = select(IdentityCheck).where(IdentityCheck.status == "verified")
    if subject.relation == "self":
        query = query.where(IdentityCheck.user_id == subject.owner_id,
                            IdentityCheck.subject_id.is_(None))  # fmt: skip
    else:
        query = query.where(IdentityCheck.subject_id == subject.id)
    return db.session.scalar(query.order_by(IdentityCheck.created_at.desc()).limit(1))


def latest_identity(subject: Subject) -> IdentityCheck | None:
    """The subject's own most recent identity check, whatever its state."""
    query = select(IdentityCheck).where(IdentityCheck.subject_id == subject.id)
    return db.session.scalar(query.order_by(IdentityCheck.created_at.desc()).limit(1))


def needs_own_identity(subject: Subject) -> bool:
    """Another person must pass their own KYC before they record their consent (R2)."""
    return subject.relation == "other" and _identity(subject) is None


def _protected_gallery() -> tuple[ProtectedTemplate, ...]:
    def vector(values: list[float] | None) -> np.ndarray | None:
        return None if values is None else np.asarray(values, dtype=np.float64)

    people = db.session.scalars(select(ProtectedPerson))
    return tuple(ProtectedTemplate(p.id, vector(p.face), vector(p.voice)) for p in people)


def _training_faces(subject: Subject) -> np.ndarray | None:
    upload = db.session.scalar(select(Upload).where(Upload.subject_id == subject.id,
                                                    Upload.kind == "training_video"))  # fmt: skip
    if upload is None:
        return None
    with tempfile.TemporaryDirectory(prefix="dhf-consent-") as tmp:
        path = vault().export(subject.id, upload.blob_id, Path(tmp) / "training")
        return face_embeddings(list(media.frames(path, every=50))[:8])


def submit_recording(record: ConsentRecord, stream: BinaryIO, filename: str) -> ConsentRecord:
    """Store the statement video encrypted, run every check, record the decision."""
    if record.status == "revoked":
        raise Forbidden("Consent was withdrawn with this link.", code="consent_revoked")
    if record.passcode_sha256 is None or record.passcode_expires_at is None:
        raise InvalidInput("Open the consent page first to get your passcode.", code="no_passcode")
    subject = db.session.get(Subject, record.subject_id)
    if needs_own_identity(subject):
        raise Forbidden("Verify your own identity before recording.", code="kyc_required")
    blob_id, size, sha = store(subject.id, stream)
    upload = Upload(owner_id=subject.owner_id, subject_id=subject.id, kind="consent_video",
                    blob_id=blob_id, filename=filename[:255], size=size, sha256=sha)  # fmt: skip
    db.session.add(upload)
    db.session.flush()
    with tempfile.TemporaryDirectory(prefix="dhf-consent-") as tmp:
        features = analyse(vault().export(subject.id, blob_id, Path(tmp) / "consent"))
    identity = _identity(subject)
    issued = _aware(record.passcode_expires_at) - PASSCODE_TTL
    evidence = Evidence(transcript=features.transcript, faces=features.faces, voice=features.voice,
                        motion=features.motion, issued_at=issued, recorded_at=utcnow(),
                        is_adult=identity.is_adult if identity else None)  # fmt: skip
    passcode = _passcode_from_statement(record)
    refs = References(kyc_face=selfie_template(identity) if identity else None,
                      training_faces=_training_faces(subject),
                      protected=_protected_gallery())  # fmt: skip
    decision = decide(evidence, refs, passcode, thresholds())
    reasons = [str(r) for r in decision.reasons]
    status = decision.status
    if identity is None:  # nobody verified who this person is: a human must look (R1, R2)
        reasons.append("kyc_missing")
        status = "rejected" if status == "rejected" else "needs_review"
    record.status, record.reasons, record.decided_at = status, reasons, utcnow()
    record.recording_upload_id = upload.id
    record.passcode_sha256 = None  # one-time
    if status == "verified":
        subject.status = "active"
    tag = {"verified": EventTag.CONSENT_GRANT}.get(status, EventTag.CONSENT_REJECT)
    record_event(tag, actor_id=subject.owner_id,
                 data={"subject": subject.id, "status": status, "reasons": reasons,
                       "scores": decision.scores, "notice": record.notice_sha256,
                       "protected_matches": decision.protected_matches})  # fmt: skip
    db.session.commit()
    return record


def _passcode_from_statement(record: ConsentRecord) -> str:
    """The statement ends 'My code is 4 7 1 9.'; the record keeps no other plain copy."""
    found = re.search(r"My code is ([\d ]+)\.$", record.statement or "")
    return found.group(1).replace(" ", "") if found else ""


def revoke(record: ConsentRecord) -> dict[str, object]:
    """Withdraw consent: refuse new work, cancel queued and running work, shred the files.

    Returns the deletion receipt (R5, R24), also written to the audit log: what was
    canceled and destroyed, and when. Revoking twice returns a receipt with nothing left.
    """
    subject = db.session.get(Subject, record.subject_id)
    now = utcnow()
    record.status, record.revoked_at = "revoked", record.revoked_at or now
    subject.status, subject.key_destroyed_at = "revoked", subject.key_destroyed_at or now
    canceled = jobs.cancel_for_subject(subject.id)
    shredded = vault().shred(subject.id)
    shredded["work_folders_deleted"] = forget(subject.id, canceled)
    receipt = {"subject_id": subject.id, "revoked_at": now.isoformat(timespec="seconds"),
               "jobs_canceled": canceled, **shredded}  # fmt: skip
    record_event(EventTag.CONSENT_REVOKE, actor_id=subject.owner_id, data={"subject": subject.id})
    event = record_event(EventTag.KEY_DESTROYED, data=receipt)
    db.session.commit()
    return {**receipt, "receipt_id": event.hash}
