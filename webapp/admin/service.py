"""Admin decisions: KYC review and the protected-person gallery, each audit-logged."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import av.error
import numpy as np
from sqlalchemy import select

from compliance import media
from compliance.audit import EventTag
from pipeline.consent_media import VOICE_RATE, voice_embedding

from .. import identity
from ..audit import record_event
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..identity.self_hosted import FORMATS, one_face, read_image
from ..models import (
    ConsentRecord,
    ConsentStatus,
    IdentityCheck,
    KycStatus,
    ProtectedPerson,
    Subject,
    SubjectStatus,
    Upload,
    User,
    utcnow,
)
from ..ownership import get_referenced
from ..storage import vault


@dataclass(frozen=True)
class ReviewItem:
    check: IdentityCheck
    email: str
    subject: Subject | None  # None: the account holder's own check
    images: list[Upload]  # the document and the selfie


def review_queue() -> list[ReviewItem]:
    checks = db.session.scalars(
        select(IdentityCheck)
        .where(IdentityCheck.status == KycStatus.NEEDS_REVIEW)
        .order_by(IdentityCheck.created_at)
    )
    items = []
    for check in checks:
        images = db.session.scalars(
            select(Upload).where(Upload.identity_check_id == check.id).order_by(Upload.created_at)
        )
        subject = db.session.get(Subject, check.subject_id) if check.subject_id else None
        ordered = sorted(images, key=lambda u: u.info.get("role") != "document")
        email = get_referenced(User, check.user_id).email
        items.append(ReviewItem(check, email, subject, ordered))
    return items


def review(check_id: str, admin: User, approve: bool, note: str) -> IdentityCheck:
    """A reviewer's decision on a queued check; the stated reason goes to the audit log."""
    check = db.session.get(IdentityCheck, check_id)
    if check is None:
        raise NotFound(f"No identity check {check_id}.")
    if check.status != KycStatus.NEEDS_REVIEW:
        raise Conflict(f"This check is {check.status}, not waiting for review.", code="not_queued")
    if admin.id == check.user_id:
        raise Forbidden(
            "Another administrator must review your own identity check.", code="own_check"
        )
    status = KycStatus.VERIFIED if approve else KycStatus.REJECTED
    check.reviewed_by, check.review_note = admin.id, note.strip()
    identity.decide(
        check,
        status,
        [f"reviewer_{'approved' if approve else 'rejected'}"],
        is_adult=check.is_adult,
    )
    record_event(
        EventTag.ADMIN_ACTION,
        actor_id=admin.id,
        data={
            "action": "kyc_review",
            "check": check.id,
            "decision": status,
            "reason": check.review_note,
        },
    )
    db.session.commit()
    return check


@dataclass(frozen=True)
class ConsentItem:
    record: ConsentRecord
    subject: Subject
    email: str  # the account holder's


def consent_queue() -> list[ConsentItem]:
    """Consents a person must decide: borderline face / voice pairs, protected people."""
    records = db.session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.status == ConsentStatus.NEEDS_REVIEW)
        .order_by(ConsentRecord.decided_at)
    )
    items = []
    for record in records:
        subject = get_referenced(Subject, record.subject_id)
        items.append(ConsentItem(record, subject, get_referenced(User, subject.owner_id).email))
    return items


def review_consent(record_id: str, admin: User, approve: bool, note: str) -> ConsentRecord:
    """A reviewer's decision on a consent waiting for a person (R4, R19); audited. An
    approval also covers the borderline pairs of every input that exists now."""
    record = db.session.get(ConsentRecord, record_id)
    if record is None:
        raise NotFound(f"No consent record {record_id}.")
    if record.status != ConsentStatus.NEEDS_REVIEW:
        raise Conflict(
            f"This consent is {record.status}, not waiting for review.", code="not_queued"
        )
    subject = get_referenced(Subject, record.subject_id)
    if admin.id == subject.owner_id:
        raise Forbidden(
            "Another administrator must review consents of your own account.", code="own_check"
        )
    record.status = ConsentStatus.VERIFIED if approve else ConsentStatus.REJECTED
    record.reviewed_by, record.reviewed_at = admin.id, utcnow()
    if approve:
        subject.status = SubjectStatus.ACTIVE
    record_event(
        EventTag.ADMIN_ACTION,
        actor_id=admin.id,
        data={
            "action": "consent_review",
            "record": record.id,
            "subject": subject.id,
            "decision": record.status,
            "reasons": record.reasons,
            "reason": note.strip(),
        },
    )
    db.session.commit()
    return record


def kyc_image(upload_id: str) -> tuple[bytes, str]:
    """The decrypted bytes and media type of one KYC image."""
    upload = db.session.get(Upload, upload_id)
    if upload is None or upload.kind != "kyc_image" or upload.identity_check_id is None:
        raise NotFound(f"No identity image {upload_id}.")
    check = get_referenced(IdentityCheck, upload.identity_check_id)
    return vault().read(check.key_owner, upload.blob_id), FORMATS[upload.info["format"]]


def _voice_template(data: bytes) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="dhf-protected-") as tmp:
        path = Path(tmp) / "clip"
        path.write_bytes(data)
        try:
            samples = media.audio(path, VOICE_RATE)
        except (OSError, ValueError, av.error.FFmpegError):
            raise InvalidInput(
                "The voice clip could not be read: send a WAV, MP3 or video file.", code="bad_audio"
            ) from None
    embedding = voice_embedding(samples) if len(samples) else None
    if embedding is None:
        raise InvalidInput(
            "The voice clip has less than a second of speech: send a longer one.", code="too_short"
        )
    return [float(v) for v in embedding]


def add_protected(
    name: str, face: bytes | None, voice: bytes | None, admin: User
) -> ProtectedPerson:
    """Keep only templates of the person's face and/or voice; the media are dropped here."""
    if not face and not voice:
        raise InvalidInput("Add a face photo, a voice clip or both.", code="missing_file")
    person = ProtectedPerson(name=name.strip()[:120], added_by=admin.id)
    if face:
        template = one_face(read_image(face, "face photo")[0], "face photo")
        person.face = [float(v) for v in np.asarray(template)]
    if voice:
        person.voice = _voice_template(voice)
    db.session.add(person)
    db.session.flush()
    kept = [kind for kind in ("face", "voice") if getattr(person, kind) is not None]
    record_event(
        EventTag.ADMIN_ACTION,
        actor_id=admin.id,
        data={
            "action": "protected_add",
            "person": person.id,
            "name": person.name,
            "templates": kept,
        },
    )
    db.session.commit()
    return person


def remove_protected(person_id: str, admin: User) -> None:
    person = db.session.get(ProtectedPerson, person_id)
    if person is None:
        raise NotFound(f"No protected person {person_id}.")
    db.session.delete(person)
    record_event(
        EventTag.ADMIN_ACTION,
        actor_id=admin.id,
        data={"action": "protected_remove", "person": person_id},
    )
    db.session.commit()
