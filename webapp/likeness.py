"""The gate every use of a person's likeness passes: API calls and each job stage.

A subject's face and voice may be used only while (R1, R2, R5, R20, R21): the account
holder's identity is verified and their account is not suspended or closed, the subject's
own consent is verified and not withdrawn, and the avatar is not frozen by an admin.
:func:`blocked` says why not, as a reason code.
"""

from __future__ import annotations

from sqlalchemy import select

from .errors import Forbidden
from .extensions import db
from .models import (
    Avatar,
    ConsentRecord,
    ConsentStatus,
    KycStatus,
    Sanction,
    Subject,
    SubjectStatus,
    User,
)

MESSAGES = {
    "consent_revoked": "The person withdrew their consent: their likeness can no longer be used.",
    "kyc_required": "Verify your identity first (Account > Verify identity).",
    "consent_required": "The person's own consent is not verified yet: "
    "send them the consent link and wait for the check.",
    "avatar_frozen": "This avatar is frozen by our trust & safety team while a report about "
    "it is reviewed.",
    "account_suspended": "Your account is suspended by our trust & safety team: no training, "
    "rendering or deployment. You can appeal at /account/appeal.",
    "account_closed": "This account is closed by our trust & safety team.",
}


def latest_consent(subject_id: str) -> ConsentRecord | None:
    """The subject's newest consent record: the one that decides (older ones are history)."""
    return db.session.scalar(
        select(ConsentRecord)
        .where(ConsentRecord.subject_id == subject_id)
        .order_by(ConsentRecord.created_at.desc())
        .limit(1)
    )


def blocked(subject: Subject, avatar: Avatar | None = None) -> str | None:
    """The reason code that forbids using this likeness now, or None when it may be used."""
    if subject.status == SubjectStatus.REVOKED or subject.key_destroyed_at is not None:
        return "consent_revoked"
    owner = db.session.get(User, subject.owner_id)
    if owner is not None and owner.sanction in (Sanction.SUSPENDED, Sanction.CLOSED):
        return f"account_{owner.sanction.value}"
    if owner is None or owner.kyc_status != KycStatus.VERIFIED:
        return "kyc_required"
    consent = latest_consent(subject.id)
    if consent is None or consent.status != ConsentStatus.VERIFIED:
        revoked = consent is not None and consent.status == ConsentStatus.REVOKED
        return "consent_revoked" if revoked else "consent_required"
    if avatar is not None and avatar.frozen_at is not None:
        return "avatar_frozen"
    return None


def require_not_withdrawn(subject: Subject) -> None:
    """403 ``consent_revoked``: after a withdrawal nothing biometric is accepted (R5)."""
    if subject.status == SubjectStatus.REVOKED or subject.key_destroyed_at is not None:
        raise Forbidden(MESSAGES["consent_revoked"], code="consent_revoked")


def require(subject: Subject, avatar: Avatar | None = None) -> None:
    """Raise 403 with the reason code when the likeness may not be used."""
    reason = blocked(subject, avatar)
    if reason:
        raise Forbidden(MESSAGES[reason], code=reason)
