"""The data model: one table per domain object, SQLAlchemy 2 typed mappings.

Public ids are random UUID hex strings (nothing enumerable leaks through the API); the
audit log keeps an integer sequence because its order is part of its integrity.
Timestamps are timezone-aware UTC. Schema changes go through Alembic (webapp/migrations).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

# -- states: every stateful row's lifecycle, one StrEnum each (members compare equal to
# their strings, so JSON and templates see plain values); the column is a VARCHAR with a
# CHECK constraint listing exactly these values.


class KycStatus(StrEnum):
    """An account holder's identity verification (R1); also an identity check's verdict."""

    UNVERIFIED = "unverified"  # never tried (accounts only)
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"
    NEEDS_REVIEW = "needs_review"


class SubjectStatus(StrEnum):
    PENDING = "pending"  # no verified consent yet
    ACTIVE = "active"  # consent verified
    REVOKED = "revoked"  # consent withdrawn: key shredded, nothing may be used again


class ConsentStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"
    NEEDS_REVIEW = "needs_review"
    REVOKED = "revoked"


class AvatarStatus(StrEnum):
    DRAFT = "draft"
    TRAINING = "training"
    READY = "ready"
    FAILED = "failed"
    REVOKED = "revoked"  # its subject withdrew consent
    # a freeze is not a status: it suspends whatever state the avatar is in (frozen_at)


class UploadStatus(StrEnum):
    STORED = "stored"  # received, not probed yet
    VALID = "valid"
    INVALID = "invalid"


class JobStatus(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    RETRYING = "retrying"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"

    @classmethod
    def active(cls) -> tuple[JobStatus, ...]:
        return cls.QUEUED, cls.RETRYING, cls.STARTED


class RenderStatus(StrEnum):
    QUEUED = "queued"
    RENDERING = "rendering"
    READY = "ready"
    FAILED = "failed"
    QUARANTINED = "quarantined"  # the speech check heard something else than the script
    CANCELED = "canceled"
    TAKEN_DOWN = "taken_down"  # removed by trust & safety: file deleted, registry row kept


class OrderStatus(StrEnum):
    OPEN = "open"  # Checkout session created
    PENDING = "pending"  # paid by a delayed method, not settled yet
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"


class ReportStatus(StrEnum):
    OPEN = "open"  # waiting for a moderator; a legal hold on what it names (retention)
    DECIDED = "decided"


class ReportCategory(StrEnum):
    NOT_ME = "not_me"  # "it's me and I did not consent" (or the depicted person's flag)
    FRAUD = "fraud"
    HARMFUL = "harmful"
    OTHER = "other"
    APPEAL = "appeal"  # an account holder appealing a sanction


class Sanction(StrEnum):
    """The account sanctions ladder (R20), each step stricter than the one before."""

    NONE = "none"
    WARNING = "warning"  # shown to the user; nothing else changes
    RESTRICTED = "restricted"  # no new avatars; renders wait for a moderator
    SUSPENDED = "suspended"  # no training, rendering or deployment
    CLOSED = "closed"  # the account is closed


def _state(states: type[StrEnum], name: str, default: StrEnum) -> Mapped[Any]:
    """A status column: VARCHAR(16) with CHECK (value IN states), loaded as ``states``."""
    kind = Enum(
        states,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
    )
    return mapped_column(kind, default=default, nullable=False)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def _id() -> Mapped[str]:
    return mapped_column(String(32), primary_key=True, default=new_id)


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


def _json(default: Any = dict) -> Mapped[Any]:
    return mapped_column(JSON, default=default, nullable=False)


def _owner() -> Mapped[str]:
    return mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id: Mapped[str] = _id()
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    kyc_status: Mapped[KycStatus] = _state(KycStatus, "ck_users_kyc_status", KycStatus.UNVERIFIED)
    # the sanctions ladder (R20): the current step, why, and since when
    sanction: Mapped[Sanction] = _state(Sanction, "ck_users_sanction", Sanction.NONE)
    sanction_reason: Mapped[str | None] = mapped_column(Text)
    sanctioned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # where signed event notifications go (training / render ended), and their HMAC key
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    webhook_secret: Mapped[str | None] = mapped_column(String(64))
    # bumped by every ledger write: the UPDATE serialises balance checks per user
    ledger_version: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", nullable=False
    )
    created_at: Mapped[datetime] = _created()

    avatars: Mapped[list[Avatar]] = relationship(back_populates="owner")


class ApiToken(db.Model):  # type: ignore[name-defined]
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = _id()
    user_id: Mapped[str] = _owner()
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class UserSession(db.Model):  # type: ignore[name-defined]
    """One signed-in browser. The cookie names this row; ending the row ends the session,
    so a copied cookie stops working at logout (the cookie alone proves nothing)."""

    __tablename__ = "user_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # random, in the cookie
    user_id: Mapped[str] = _owner()
    created_at: Mapped[datetime] = _created()
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str | None] = mapped_column(String(200))

    user: Mapped[User] = relationship()


class PasswordResetToken(db.Model):  # type: ignore[name-defined]
    """An emailed reset link: single use, expiring; only the token's SHA-256 is stored."""

    __tablename__ = "password_reset_tokens"
    id: Mapped[str] = _id()
    user_id: Mapped[str] = _owner()
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class Subject(db.Model):  # type: ignore[name-defined]
    """The person depicted. Their biometric files are encrypted under their own data key."""

    __tablename__ = "subjects"
    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner()
    display_name: Mapped[str] = mapped_column(String(120), nullable=False)
    relation: Mapped[str] = mapped_column(String(8), nullable=False)  # self | other
    status: Mapped[SubjectStatus] = _state(
        SubjectStatus, "ck_subjects_status", SubjectStatus.PENDING
    )
    created_at: Mapped[datetime] = _created()
    key_destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # where the depicted person's portal codes go (optional; a "self" subject uses the
    # account's own address): set by the account holder with the consent link
    contact_email: Mapped[str | None] = mapped_column(String(254))


class IdentityCheck(db.Model):  # type: ignore[name-defined]
    """One KYC attempt with a provider (R1). Document images live in the vault, not here."""

    __tablename__ = "identity_checks"
    id: Mapped[str] = _id()
    user_id: Mapped[str] = _owner()
    subject_id: Mapped[str | None] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    provider_ref: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[KycStatus] = _state(KycStatus, "ck_identity_checks_status", KycStatus.PENDING)
    reasons: Mapped[list[str]] = _json(list)
    is_adult: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = _created()
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # self-hosted provider: what the reviewer sees besides the images
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    scores: Mapped[dict[str, Any]] = _json()  # face distance, faces found per image
    # the selfie's 128-d face template, encrypted in the vault under the same key as the images
    face_blob_id: Mapped[str | None] = mapped_column(String(64))
    reviewed_by: Mapped[str | None] = mapped_column(String(32))  # admin user id
    review_note: Mapped[str | None] = mapped_column(Text)  # the reviewer's stated reason

    @property
    def key_owner(self) -> str:
        """Whose vault key protects this check's images: the subject's, else the user's."""
        return self.subject_id or self.user_id


class ConsentRecord(db.Model):  # type: ignore[name-defined]
    """The subject's own, separate, live consent (R2-R5)."""

    __tablename__ = "consent_records"
    id: Mapped[str] = _id()
    subject_id: Mapped[str] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True, nullable=False
    )
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    notice_version: Mapped[str] = mapped_column(String(32), nullable=False)
    notice_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    scope: Mapped[list[str]] = _json(list)  # allowed uses
    statement: Mapped[str | None] = mapped_column(Text)  # what the person reads (no code)
    # HMAC-SHA256 of the passcode under the app's secret key: the code is never stored
    passcode_sha256: Mapped[str | None] = mapped_column(String(64))
    challenge: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # cues, no digits
    passcode_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[ConsentStatus] = _state(
        ConsentStatus, "ck_consent_records_status", ConsentStatus.PENDING
    )
    reasons: Mapped[list[str]] = _json(list)
    scores: Mapped[dict[str, float] | None] = mapped_column(JSON)  # of the latest decision
    recording_upload_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = _created()
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # a reviewer's approval of a borderline decision (admin user id, when)
    reviewed_by: Mapped[str | None] = mapped_column(String(32))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Avatar(db.Model):  # type: ignore[name-defined]
    __tablename__ = "avatars"
    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner()
    subject_id: Mapped[str] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True, nullable=False
    )
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    style: Mapped[str] = mapped_column(String(32), default="real2d", nullable=False)
    framing: Mapped[str] = mapped_column(String(16), default="half", nullable=False)
    status: Mapped[AvatarStatus] = _state(AvatarStatus, "ck_avatars_status", AvatarStatus.DRAFT)
    # set by trust & safety: no training, render or deployment until unfrozen (R21)
    frozen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    frozen_reason: Mapped[str | None] = mapped_column(Text)
    quality: Mapped[dict[str, Any]] = _json()
    model_blob_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    model_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # R24

    owner: Mapped[User] = relationship(back_populates="avatars")
    subject: Mapped[Subject] = relationship()


class Upload(db.Model):  # type: ignore[name-defined]
    """A stored biometric source file (ciphertext in the vault under the subject's key)."""

    __tablename__ = "uploads"
    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner()
    # NULL only for the account holder's own KYC images (encrypted under the user's key)
    subject_id: Mapped[str | None] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True
    )
    avatar_id: Mapped[str | None] = mapped_column(ForeignKey("avatars.id", ondelete="CASCADE"))
    identity_check_id: Mapped[str | None] = mapped_column(
        ForeignKey("identity_checks.id", ondelete="CASCADE"), index=True
    )
    # training_video | voice_sample | consent_video | kyc_image
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    blob_id: Mapped[str] = mapped_column(String(64), nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    text: Mapped[str | None] = mapped_column(Text)  # transcript of a voice sample
    status: Mapped[UploadStatus] = _state(UploadStatus, "ck_uploads_status", UploadStatus.STORED)
    info: Mapped[dict[str, Any]] = _json()  # probe results
    reasons: Mapped[list[str]] = _json(list)  # why it is invalid, if it is
    # the identity template (faces / voice) of this file, encrypted in the vault (R7)
    template_blob_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    # retention deleted the file (and its template); the row stays as the record (R24)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(db.Model):  # type: ignore[name-defined]
    """A queued unit of work. The row is the truth; RQ only carries it."""

    __tablename__ = "jobs"
    id: Mapped[str] = _id()  # also the RQ job id
    owner_id: Mapped[str] = _owner()
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    queue: Mapped[str] = mapped_column(String(8), nullable=False)
    target_id: Mapped[str] = mapped_column(String(32), index=True, nullable=False)
    status: Mapped[JobStatus] = _state(JobStatus, "ck_jobs_status", JobStatus.QUEUED)
    progress: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    stage: Mapped[str] = mapped_column(String(64), default="queued", nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # "kind:target" while the job is active, NULL after: refuses duplicate active jobs
    active_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    result: Mapped[dict[str, Any]] = _json()
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Render(db.Model):  # type: ignore[name-defined]
    __tablename__ = "renders"
    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner()
    avatar_id: Mapped[str] = mapped_column(
        ForeignKey("avatars.id", ondelete="CASCADE"), index=True, nullable=False
    )
    script: Mapped[str] = mapped_column(Text, nullable=False)
    options: Mapped[dict[str, Any]] = _json()  # language, background, tone, style
    status: Mapped[RenderStatus] = _state(RenderStatus, "ck_renders_status", RenderStatus.QUEUED)
    content_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    output_blob_id: Mapped[str | None] = mapped_column(String(64))
    credits_reserved: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[datetime] = _created()
    taken_down_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # R24: file gone


class ContentRecord(db.Model):  # type: ignore[name-defined]
    """The content registry (R15): every id a file can be traced back by."""

    __tablename__ = "content_records"
    content_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    render_id: Mapped[str | None] = mapped_column(ForeignKey("renders.id", ondelete="SET NULL"))
    owner_id: Mapped[str] = _owner()
    avatar_id: Mapped[str | None] = mapped_column(String(32), index=True)
    subject_id: Mapped[str | None] = mapped_column(String(32), index=True)
    consent_record_id: Mapped[str | None] = mapped_column(String(32))
    produce_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    watermark_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    manifest_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    manifest: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _created()


class Order(db.Model):  # type: ignore[name-defined]
    __tablename__ = "orders"
    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner()
    item: Mapped[str] = mapped_column(
        String(32), nullable=False
    )  # avatar_training | render_credits
    avatar_id: Mapped[str | None] = mapped_column(ForeignKey("avatars.id", ondelete="SET NULL"))
    quantity: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    amount_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), default="eur", nullable=False)
    status: Mapped[OrderStatus] = _state(OrderStatus, "ck_orders_status", OrderStatus.OPEN)
    stripe_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_intent: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = _created()
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CreditEntry(db.Model):  # type: ignore[name-defined]
    """Ledger row; a balance is the sum of deltas, never a stored number."""

    __tablename__ = "credit_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[str] = _owner()
    delta: Mapped[int] = mapped_column(Integer, nullable=False)  # credit seconds
    # grant | refund (orders); reserve | release | spend (renders); live (a minute on air)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # "<kind>:<order or render id>": each movement happens at most once
    idem_key: Mapped[str] = mapped_column(String(80), nullable=False)
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    render_id: Mapped[str | None] = mapped_column(ForeignKey("renders.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("idem_key", name="uq_credit_entries_idem_key"),)


class StripeEvent(db.Model):  # type: ignore[name-defined]
    """Every webhook event processed, so a redelivery changes nothing (R27)."""

    __tablename__ = "stripe_events"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's event id
    type: Mapped[str] = mapped_column(String(80), nullable=False)
    received_at: Mapped[datetime] = _created()


class Report(db.Model):  # type: ignore[name-defined]
    """A complaint (R21): a public abuse / "deepfake of me" report, a depicted person's
    flag from their portal, or an account holder's appeal of a sanction.

    The reporter follows it through a secret status link (only its SHA-256 is stored).
    What the report resolves to (by the verifier, or the flagged render) is kept as ids;
    while it is open it is a legal hold on them (retention deletes nothing it names)."""

    __tablename__ = "reports"
    id: Mapped[str] = _id()  # the ticket id shown to the reporter
    status_token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    category: Mapped[ReportCategory] = _state(
        ReportCategory, "ck_reports_category", ReportCategory.OTHER
    )
    source: Mapped[str] = mapped_column(String(16), default="public", nullable=False)
    priority: Mapped[int] = mapped_column(Integer, default=0, nullable=False)  # higher first
    reason: Mapped[str] = mapped_column(Text, nullable=False)  # the reporter's own words
    contact: Mapped[str | None] = mapped_column(String(254))
    link: Mapped[str | None] = mapped_column(String(500))  # where they saw it, as given
    # what it resolves to (NULL: not ours); the verifier's answer for the attached file
    content_id: Mapped[str | None] = mapped_column(String(32), index=True)
    render_id: Mapped[str | None] = mapped_column(String(32), index=True)
    avatar_id: Mapped[str | None] = mapped_column(String(32), index=True)
    subject_id: Mapped[str | None] = mapped_column(String(32), index=True)
    owner_id: Mapped[str | None] = mapped_column(String(32), index=True)  # the account
    verification: Mapped[dict[str, Any]] = _json()
    attachment_blob_id: Mapped[str | None] = mapped_column(String(64))  # vault, own key
    status: Mapped[ReportStatus] = _state(ReportStatus, "ck_reports_status", ReportStatus.OPEN)
    outcome: Mapped[str | None] = mapped_column(String(32))  # dismissed | taken_down | ...
    decision_note: Mapped[str | None] = mapped_column(Text)  # the moderator's stated reason
    decided_by: Mapped[str | None] = mapped_column(String(32))  # admin user id
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_by: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = _created()
    attachment_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PortalCode(db.Model):  # type: ignore[name-defined]
    """A one-time code that opens the depicted person's portal: mailed to the subject's
    contact address, single use, expiring; only its HMAC is stored, guesses are counted."""

    __tablename__ = "portal_codes"
    id: Mapped[str] = _id()
    subject_id: Mapped[str] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True, nullable=False
    )
    consent_record_id: Mapped[str] = mapped_column(String(32), nullable=False)
    code_mac: Mapped[str] = mapped_column(String(64), nullable=False)
    sent_to: Mapped[str] = mapped_column(String(254), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PortalSession(db.Model):  # type: ignore[name-defined]
    """The grant a correct code buys: the cookie holds a random token, this row (by its
    SHA-256) says which subject it opens and until when."""

    __tablename__ = "portal_sessions"
    id: Mapped[str] = _id()
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    subject_id: Mapped[str] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True, nullable=False
    )
    consent_record_id: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProtectedPerson(db.Model):  # type: ignore[name-defined]
    """A public figure nobody may clone without review (R19): templates only, no media."""

    __tablename__ = "protected_people"
    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    face: Mapped[list[float] | None] = mapped_column(JSON)  # dlib 128-d face template
    voice: Mapped[list[float] | None] = mapped_column(JSON)  # Resemblyzer 256-d, unit length
    added_by: Mapped[str | None] = mapped_column(String(32))  # admin user id
    created_at: Mapped[datetime] = _created()


class AuditEvent(db.Model):  # type: ignore[name-defined]
    """Append-only, hash-chained (compliance.audit). Database triggers refuse UPDATE/DELETE."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = _created()
    tag: Mapped[str] = mapped_column(String(48), index=True, nullable=False)
    actor_id: Mapped[str | None] = mapped_column(String(32), index=True)
    data: Mapped[dict[str, Any]] = _json()
    # unique: two rows can never claim the same predecessor, so the chain cannot fork
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)


# -- Q&A avatars (issue 18): a set of approved answers, deployed on avatars --------------


class QASetStatus(StrEnum):
    DRAFT = "draft"  # on no avatar yet
    RENDERING = "rendering"  # a deployment is rendering its first clips
    LIVE = "live"  # at least one deployment answers visitors


class DeploymentStatus(StrEnum):
    RENDERING = "rendering"  # waiting for its clips: visitors are told to come back
    LIVE = "live"  # every clip was ready once; answers visitors
    STOPPED = "stopped"  # detached by its owner


class QASet(db.Model):  # type: ignore[name-defined]
    """An owner's approved answers. The avatar says nothing else (issue 18)."""

    __tablename__ = "qa_sets"
    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner()
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    # {"en": "...", "zh": "..."}: what plays below the match threshold, per language
    fallback: Mapped[dict[str, str]] = _json()
    status: Mapped[QASetStatus] = _state(QASetStatus, "ck_qa_sets_status", QASetStatus.DRAFT)
    version: Mapped[int] = mapped_column(Integer, default=0, nullable=False)  # bumped per edit
    created_at: Mapped[datetime] = _created()


class QAItem(db.Model):  # type: ignore[name-defined]
    """One approved answer and the question phrasings that lead to it."""

    __tablename__ = "qa_items"
    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner()
    set_id: Mapped[str] = mapped_column(
        ForeignKey("qa_sets.id", ondelete="CASCADE"), index=True, nullable=False
    )
    answer: Mapped[str] = mapped_column(Text, nullable=False)
    lang: Mapped[str] = mapped_column(String(2), nullable=False)  # en | zh
    questions: Mapped[list[str]] = _json(list)
    created_at: Mapped[datetime] = _created()


class QADeployment(db.Model):  # type: ignore[name-defined]
    """A set attached to one avatar, reachable at ``/talk/<slug>``."""

    __tablename__ = "qa_deployments"
    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner()
    set_id: Mapped[str] = mapped_column(
        ForeignKey("qa_sets.id", ondelete="CASCADE"), index=True, nullable=False
    )
    avatar_id: Mapped[str] = mapped_column(
        ForeignKey("avatars.id", ondelete="CASCADE"), index=True, nullable=False
    )
    slug: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    origins: Mapped[list[str]] = _json(list)  # sites allowed to embed the talk page
    status: Mapped[DeploymentStatus] = _state(
        DeploymentStatus, "ck_qa_deployments_status", DeploymentStatus.RENDERING
    )
    created_at: Mapped[datetime] = _created()
    live_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (UniqueConstraint("set_id", "avatar_id", name="uq_qa_deployments_set_avatar"),)


class QAClip(db.Model):  # type: ignore[name-defined]
    """The render that speaks one answer (an item, or ``fallback:<lang>``) on a deployment."""

    __tablename__ = "qa_clips"
    id: Mapped[str] = _id()
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("qa_deployments.id", ondelete="CASCADE"), index=True, nullable=False
    )
    key: Mapped[str] = mapped_column(String(40), nullable=False)  # item id | fallback:en
    render_id: Mapped[str | None] = mapped_column(ForeignKey("renders.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text, nullable=False)  # the answer as it was rendered
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("deployment_id", "key", name="uq_qa_clips_key"),)


class QALog(db.Model):  # type: ignore[name-defined]
    """One visitor question and what answered it (kept ``QA_LOG_RETENTION_DAYS``)."""

    __tablename__ = "qa_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("qa_deployments.id", ondelete="CASCADE"), index=True, nullable=False
    )
    conversation: Mapped[str] = mapped_column(String(32), index=True, nullable=False)
    question: Mapped[str] = mapped_column(Text, nullable=False)
    item_id: Mapped[str | None] = mapped_column(String(32))  # NULL: the fallback answered
    score: Mapped[float | None] = mapped_column(Float)
    lang: Mapped[str] = mapped_column(String(2), nullable=False)
    spoken: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = _created()


# -- live shows (issue 19): a plan of pre-rendered segments played as one live stream ------


class LiveRoomStatus(StrEnum):
    DRAFT = "draft"  # no segment yet
    RENDERING = "rendering"  # the idle clip or the first segment is still rendering
    READY = "ready"  # may go live (the rest renders while it plays)
    LIVE = "live"  # the show job was started and streams (or is about to)
    ENDED = "ended"  # stopped: by its operator, at its maximum length, or by the gate


class LiveCommentStatus(StrEnum):
    QUEUED = "queued"  # matched an approved answer: spliced in at the next boundary
    AIRED = "aired"  # its answer went on air (``aired_at``)
    UNMATCHED = "unmatched"  # no approved answer: listed for the operator
    REJECTED = "rejected"  # refused by moderation: never matched, never aired


class LiveLineStatus(StrEnum):
    RENDERING = "rendering"  # its render is queued or running on the gpu queue
    QUEUED = "queued"  # rendered and handed to the show: it airs at the next boundary
    AIRED = "aired"  # it went on air (``aired_at``)
    FAILED = "failed"  # its render failed, or the show ended before it aired


class LiveRoom(db.Model):  # type: ignore[name-defined]
    """A live show of one avatar: its plan (``LiveSegment`` rows), the idle loop, the Q&A
    deployment that answers comments, its limits and its output URLs."""

    __tablename__ = "live_rooms"
    id: Mapped[str] = _id()
    owner_id: Mapped[str] = _owner()
    avatar_id: Mapped[str] = mapped_column(
        ForeignKey("avatars.id", ondelete="CASCADE"), index=True, nullable=False
    )
    qa_deployment_id: Mapped[str | None] = mapped_column(
        ForeignKey("qa_deployments.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    slug: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)  # watch page
    loop: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)  # replay the plan
    idle_script: Mapped[str] = mapped_column(Text, nullable=False)  # the loop between segments
    idle_render_id: Mapped[str | None] = mapped_column(
        ForeignKey("renders.id", ondelete="SET NULL")
    )
    # the spoken AI notice (purpose live_notice, every label): aired first and then again
    # every LIVE_NOTICE_INTERVAL_S; the room's other clips carry no audible notice
    notice_render_id: Mapped[str | None] = mapped_column(
        ForeignKey("renders.id", ondelete="SET NULL")
    )
    max_seconds: Mapped[int] = mapped_column(Integer, nullable=False)  # the show ends here
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # planned
    # the scheduled start: scheduled | waiting (clips not ready at starts_at) | started |
    # missed (still not ready after LIVE_SCHEDULE_GRACE_S) | refused (see schedule_note)
    schedule_state: Mapped[str | None] = mapped_column(String(16))
    schedule_note: Mapped[str | None] = mapped_column(Text)  # why, for the owner
    outputs: Mapped[list[str]] = _json(list)  # rtmp(s):// ingest URLs (secret stream keys)
    status: Mapped[LiveRoomStatus] = _state(
        LiveRoomStatus, "ck_live_rooms_status", LiveRoomStatus.DRAFT
    )
    started_by: Mapped[str | None] = mapped_column(String(32))  # the operator (user id)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # first frame
    stop_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stop_reason: Mapped[str | None] = mapped_column(String(32))  # stopped | max_length | gate
    stats: Mapped[dict[str, Any]] = _json()  # the engine's figures at the end
    created_at: Mapped[datetime] = _created()


class LiveSegment(db.Model):  # type: ignore[name-defined]
    """One scripted segment of a show's plan, rendered ahead as an ordinary render."""

    __tablename__ = "live_segments"
    id: Mapped[str] = _id()
    room_id: Mapped[str] = mapped_column(
        ForeignKey("live_rooms.id", ondelete="CASCADE"), index=True, nullable=False
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(120), nullable=False)
    script: Mapped[str] = mapped_column(Text, nullable=False)
    render_id: Mapped[str | None] = mapped_column(ForeignKey("renders.id", ondelete="SET NULL"))
    # the product card drawn on its frames: {title, price, image_blob_id?} (vault blob)
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("room_id", "position", name="uq_live_segments_position"),)


class LiveComment(db.Model):  # type: ignore[name-defined]
    """A viewer's comment (watch page or a platform's webhook) and what answered it."""

    __tablename__ = "live_comments"
    id: Mapped[str] = _id()
    room_id: Mapped[str] = mapped_column(
        ForeignKey("live_rooms.id", ondelete="CASCADE"), index=True, nullable=False
    )
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # api | watch
    author: Mapped[str | None] = mapped_column(String(80))  # as the platform names them
    text: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[LiveCommentStatus] = _state(
        LiveCommentStatus, "ck_live_comments_status", LiveCommentStatus.UNMATCHED
    )
    item_id: Mapped[str | None] = mapped_column(String(32))  # the matched Q&A item
    render_id: Mapped[str | None] = mapped_column(String(32))  # the answer clip that airs
    score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()
    aired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LiveLine(db.Model):  # type: ignore[name-defined]
    """A line an operator typed during a show: moderated, rendered on the fly as an
    ordinary render (purpose ``live_clip``) and spliced in at the next boundary."""

    __tablename__ = "live_lines"
    id: Mapped[str] = _id()
    room_id: Mapped[str] = mapped_column(
        ForeignKey("live_rooms.id", ondelete="CASCADE"), index=True, nullable=False
    )
    operator_id: Mapped[str] = mapped_column(String(32), nullable=False)  # who typed it
    text: Mapped[str] = mapped_column(Text, nullable=False)
    render_id: Mapped[str | None] = mapped_column(ForeignKey("renders.id", ondelete="SET NULL"))
    status: Mapped[LiveLineStatus] = _state(
        LiveLineStatus, "ck_live_lines_status", LiveLineStatus.RENDERING
    )
    airs_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the estimate
    created_at: Mapped[datetime] = _created()
    aired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LiveLogEntry(db.Model):  # type: ignore[name-defined]
    """A room's operator log: who drove the show and when (each entry is also audited)."""

    __tablename__ = "live_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(
        ForeignKey("live_rooms.id", ondelete="CASCADE"), index=True, nullable=False
    )
    actor_id: Mapped[str | None] = mapped_column(String(32))  # the operator; None: the show
    tag: Mapped[str] = mapped_column(String(40), nullable=False)  # the audit event's tag
    data: Mapped[dict[str, Any]] = _json()
    created_at: Mapped[datetime] = _created()
