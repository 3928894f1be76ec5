"""Subjects, consent links, timed challenges, recording checks and revocation.

A consent link is single-use once decided: after ``verified`` or ``revoked`` it issues no
passcode and takes no recording (409 ``consent_decided``); after ``rejected`` a new attempt
is allowed (and audited). The passcode is kept only as an HMAC under the app's secret key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from flask import current_app
from sqlalchemy import select

from compliance.audit import EventTag
from compliance.consent import (
    PASSCODE_TTL,
    Challenge,
    Evidence,
    ProtectedTemplate,
    decide,
    new_challenge,
    new_passcode,
    statement,
)
from compliance.media import MediaError
from pipeline.consent_media import analyse

from .. import jobs
from ..accounts import normalise_email
from ..audit import record_event
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..models import (
    ConsentRecord,
    ConsentStatus,
    IdentityCheck,
    ProtectedPerson,
    Subject,
    SubjectStatus,
    Upload,
    User,
    utcnow,
)
from ..ownership import get_referenced
from ..storage import store, vault
from ..studio.tasks import forget
from . import binding, notice
from .binding import thresholds, verified_identity

DECIDED = ("verified", "revoked")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _passcode_mac(passcode: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, b"consent-passcode:" + passcode.encode(), hashlib.sha256).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def create_subject(
    owner: User, display_name: str, relation: str, contact_email: str | None = None
) -> tuple[Subject, str]:
    """A person to depict and their single consent link token (shown once).

    ``contact_email``: where the person's portal codes go (webapp.portal), optional."""
    if relation not in ("self", "other"):
        raise InvalidInput("relation must be 'self' or 'other'.", code="bad_relation")
    if not display_name.strip():
        raise InvalidInput("Give the person's display name.", code="missing_fields")
    subject = Subject(
        owner_id=owner.id,
        display_name=display_name.strip()[:120],
        relation=relation,
        contact_email=contact_address(contact_email),
    )
    db.session.add(subject)
    db.session.flush()
    token = secrets.token_urlsafe(32)
    db.session.add(
        ConsentRecord(
            subject_id=subject.id,
            token_sha256=_digest(token),
            notice_version=notice.VERSION,
            notice_sha256=notice.SHA256,
            scope=list(notice.USES),
        )
    )
    db.session.commit()
    return subject, token


def contact_address(email: str | None) -> str | None:
    """A checked contact address for the person, or None when none is given."""
    if email is None or not email.strip():
        return None
    try:
        return normalise_email(email)
    except InvalidInput:
        raise InvalidInput("contact_email is not an e-mail address.", code="bad_contact") from None


def set_contact(subject: Subject, email: str | None) -> Subject:
    """The account holder adds (or removes) the person's own address; audited."""
    subject.contact_email = contact_address(email)
    data = {"subject": subject.id, "contact_set": subject.contact_email is not None}
    record_event(EventTag.SUBJECT_CONTACT, actor_id=subject.owner_id, data=data)
    db.session.commit()
    return subject


def record_for(token: str) -> ConsentRecord:
    record = db.session.scalar(
        select(ConsentRecord).where(ConsentRecord.token_sha256 == _digest(token))
    )
    if record is None:
        raise NotFound(
            "This consent link is not valid: ask for a new one.", code="bad_consent_link"
        )
    return record


@dataclass(frozen=True)
class Attempt:
    """What the person (or an honest capture app) needs to record a statement."""

    passcode: str
    statement: str
    expires_at: datetime
    challenge: list[dict[str, Any]]  # [{cue, at_s, digit?}] seconds after recording starts


def _open(record: ConsentRecord) -> Subject:
    """The subject of a link that may still take an attempt; 409 once decided."""
    if record.status in DECIDED:
        raise Conflict(
            "This consent link was already used: consent is "
            f"{record.status}. Ask the account holder for a new link if needed.",
            code="consent_decided",
        )
    subject = get_referenced(Subject, record.subject_id)
    if needs_own_identity(subject):
        raise Forbidden(
            "Verify your own identity first: open your consent link in a browser.",
            code="kyc_required",
        )
    return subject


def issue_passcode(record: ConsentRecord) -> Attempt:
    """A fresh one-time passcode (30 minutes) with its timed challenge."""
    subject = _open(record)
    passcode, challenge = new_passcode(), new_challenge()
    record.passcode_sha256 = _passcode_mac(passcode)
    record.passcode_expires_at = utcnow() + PASSCODE_TTL
    record.challenge = challenge.as_json()
    record.statement = statement(subject.display_name)
    if record.status == ConsentStatus.REJECTED:  # a new attempt after a rejection
        record_event(
            EventTag.CONSENT_RETRY,
            actor_id=subject.owner_id,
            data={"subject": subject.id, "previous": record.reasons},
        )
    db.session.commit()
    return Attempt(
        passcode, record.statement, record.passcode_expires_at, challenge.with_digits(passcode)
    )


def latest_identity(subject: Subject) -> IdentityCheck | None:
    """The subject's own most recent identity check, whatever its state."""
    query = select(IdentityCheck).where(IdentityCheck.subject_id == subject.id)
    return db.session.scalar(query.order_by(IdentityCheck.created_at.desc()).limit(1))


def needs_own_identity(subject: Subject) -> bool:
    """Another person must pass their own KYC before they record their consent (R2)."""
    return subject.relation == "other" and verified_identity(subject) is None


def _protected_gallery() -> tuple[ProtectedTemplate, ...]:
    def vector(values: list[float] | None) -> np.ndarray | None:
        return None if values is None else np.asarray(values, dtype=np.float64)

    people = db.session.scalars(select(ProtectedPerson))
    return tuple(ProtectedTemplate(p.id, vector(p.face), vector(p.voice)) for p in people)


def _analyse(subject: Subject, upload: Upload) -> Any:
    """The recording's features; an unreadable file is refused and nothing is kept."""
    with tempfile.TemporaryDirectory(prefix="dhf-consent-") as tmp:
        try:
            return analyse(vault().export(subject.id, upload.blob_id, Path(tmp) / "consent"))
        except (MediaError, ValueError, IndexError, OSError) as exc:
            vault().delete(subject.id, upload.blob_id)
            db.session.rollback()
            raise InvalidInput(
                "The recording could not be read as a video with sound: record "
                "it again on the consent page.",
                code="unreadable_recording",
            ) from exc


def submit_recording(record: ConsentRecord, stream: IO[bytes], filename: str) -> ConsentRecord:
    """Store the statement video encrypted, run every check, record the decision."""
    subject = _open(record)
    if record.passcode_sha256 is None or record.passcode_expires_at is None:
        raise InvalidInput("Open the consent page first to get your passcode.", code="no_passcode")
    upload = _store_recording(subject, stream, filename)
    features = _analyse(subject, upload)
    binding.keep_template(upload, faces=features.faces, voice=features.voice)
    identity = verified_identity(subject)
    decision = _decide(record, subject, features, identity)
    reasons = [str(r) for r in decision.reasons]
    status = ConsentStatus(decision.status)
    if identity is None:  # nobody verified who this person is: a human must look (R1, R2)
        reasons.append("kyc_missing")
        rejected = status == ConsentStatus.REJECTED
        status = ConsentStatus.REJECTED if rejected else ConsentStatus.NEEDS_REVIEW
    record.status, record.reasons, record.decided_at = status, reasons, utcnow()
    record.scores, record.recording_upload_id = decision.scores, upload.id
    record.passcode_sha256 = record.challenge = None  # one-time
    if status == ConsentStatus.VERIFIED:
        subject.status = SubjectStatus.ACTIVE
    tag = {"verified": EventTag.CONSENT_GRANT}.get(status, EventTag.CONSENT_REJECT)
    data = {
        "subject": subject.id,
        "status": status,
        "reasons": reasons,
        "scores": decision.scores,
        "notice": record.notice_sha256,
        "digits_heard": len(features.digits),
        "turns": features.turns,
        "protected_matches": decision.protected_matches,
    }
    record_event(tag, actor_id=subject.owner_id, data=data)
    db.session.commit()
    return record


def _store_recording(subject: Subject, stream: IO[bytes], filename: str) -> Upload:
    blob_id, size, sha = store(subject.id, stream)
    upload = Upload(
        owner_id=subject.owner_id,
        subject_id=subject.id,
        kind="consent_video",
        blob_id=blob_id,
        filename=filename[:255],
        size=size,
        sha256=sha,
    )
    db.session.add(upload)
    db.session.flush()
    return upload


def _decide(record: ConsentRecord, subject: Subject, features: Any, identity: Any) -> Any:
    """Every check of ``compliance.consent.decide`` on what the recording showed: the timed
    challenge against the stored passcode HMAC, one person across the inputs, the
    protected people, liveness."""
    assert record.passcode_sha256 is not None and record.passcode_expires_at is not None
    evidence = Evidence(
        transcript=features.transcript,
        digits=features.digits,
        turns=features.turns,
        faces=features.faces,
        voice=features.voice,
        motion=features.motion,
        issued_at=_aware(record.passcode_expires_at) - PASSCODE_TTL,
        recorded_at=utcnow(),
        is_adult=identity.is_adult if identity else None,
    )
    mac = record.passcode_sha256
    return decide(
        evidence,
        Challenge.from_json(record.challenge or []),
        lambda code: hmac.compare_digest(_passcode_mac(code), mac),
        binding.likeness(subject, binding.PARTNERS["consent"]),
        _protected_gallery(),
        thresholds(),
    )


def revoke(record: ConsentRecord) -> dict[str, object]:
    """Withdraw consent: refuse new work, cancel queued and running work, shred the files.

    Returns the deletion receipt (R5, R24), also written to the audit log: what was
    canceled and destroyed, and when. Revoking twice returns a receipt with nothing left.
    """
    subject = get_referenced(Subject, record.subject_id)
    now = utcnow()
    record.status, record.revoked_at = ConsentStatus.REVOKED, record.revoked_at or now
    subject.status = SubjectStatus.REVOKED
    subject.key_destroyed_at = subject.key_destroyed_at or now
    canceled = jobs.cancel_for_subject(subject.id)
    shredded = vault().shred(subject.id)
    shredded["work_folders_deleted"] = forget(subject.id, canceled)
    receipt = {
        "subject_id": subject.id,
        "revoked_at": now.isoformat(timespec="seconds"),
        "jobs_canceled": canceled,
        **shredded,
    }
    record_event(EventTag.CONSENT_REVOKE, actor_id=subject.owner_id, data={"subject": subject.id})
    event = record_event(EventTag.KEY_DESTROYED, data=receipt)
    db.session.commit()
    return {**receipt, "receipt_id": event.hash}
