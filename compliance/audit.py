"""Append-only, hash-chained audit log: event tags, row hashing, chain verification.

This module owns the *rules* of the log; persistence belongs to the caller (the web app
stores rows with an ORM). Each row's hash covers its own fields and the previous row's
hash, so editing, deleting or reordering any row breaks every hash after it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

GENESIS = "0" * 64


class EventTag(StrEnum):
    """Typed audit event tags, ``<area>:<action>`` (R22)."""

    AUTH_SIGNUP = "auth:signup"
    AUTH_LOGIN = "auth:login"
    AUTH_LOGIN_FAILED = "auth:login-failed"
    AUTH_LOGOUT = "auth:logout"
    AUTH_TOKEN_ISSUED = "auth:token-issued"
    KYC_STARTED = "kyc:started"
    KYC_DECISION = "kyc:decision"
    KYC_REDACTED = "kyc:redacted"  # the provider was asked to delete, or confirmed deleting
    CONSENT_GRANT = "consent:grant"
    CONSENT_REJECT = "consent:reject"
    CONSENT_REVOKE = "consent:revoke"
    CONSENT_RETRY = "consent:retry"  # a new attempt after a rejected one
    CONSENT_BINDING = "consent:binding"  # an input compared with the person's other inputs
    SUBJECT_CONTACT = "subject:contact"  # the person's contact address set or removed
    UPLOAD_REFUSED = "upload:refused"
    UPLOAD_STORED = "upload:stored"
    UPLOAD_VALIDATED = "upload:validated"
    JOB_ENQUEUED = "job:enqueued"
    JOB_FINISHED = "job:finished"
    JOB_FAILED = "job:failed"
    JOB_CANCELED = "job:canceled"
    MODERATION_VERDICT = "moderation:verdict"
    AVATAR_TRAINED = "avatar:trained"  # a model stored; the job's end is JOB_FINISHED
    RENDER_CREATED = "render:created"  # requested: script moderated, credits held
    RENDER_QUARANTINED = "render:quarantined"  # the speech check heard another text
    RENDER_PUBLISHED = "render:published"  # stamped, registered, downloadable
    RENDER_DOWNLOADED = "render:downloaded"
    AVATAR_MODEL_EXPORTED = "avatar:model-exported"  # the 3D model (GLB), with its ids
    VERIFY_REQUEST = "verify:request"
    PAYMENT_FULFILLED = "payment:fulfilled"
    PAYMENT_REFUNDED = "payment:refunded"
    KEY_DESTROYED = "key:destroyed"
    RETENTION_DELETED = "retention:deleted"  # one deletion receipt per file kind and subject
    PORTAL_CODE_SENT = "portal:code-sent"  # a one-time code mailed to the depicted person
    PORTAL_OPENED = "portal:opened"  # the depicted person entered their portal
    ADMIN_ACTION = "admin:action"
    REPORT_OPENED = "report:opened"  # a public report, a depicted person's flag or an appeal
    REPORT_DECIDED = "report:decided"  # a moderator's outcome, with the stated reason
    RENDER_TAKEN_DOWN = "render:taken-down"  # file deleted, registry row kept
    AVATAR_FROZEN = "avatar:frozen"
    AVATAR_UNFROZEN = "avatar:unfrozen"
    SANCTION = "account:sanction"  # a step on the sanctions ladder (R20), with the reason
    LIVE_STARTED = "live:started"  # an operator started a show (who drove it, when)
    LIVE_ON_AIR = "live:on-air"  # the first frame went out
    LIVE_STOP_REQUESTED = "live:stop-requested"  # the operator asked the show to end
    LIVE_ENDED = "live:ended"  # stopped, with the reason (stopped, max_length, gate code)
    LIVE_COMMENT = "live:comment"  # a viewer comment: matched, unmatched or refused
    LIVE_LINE = "live:line"  # an operator typed a line (rendering, or refused by moderation)
    LIVE_LINE_AIRED = "live:line-aired"  # an operator's line went on air
    LIVE_CREDITS_LOW = "live:credits-low"  # credits cover fewer than LIVE_LOW_CREDIT_MINUTES


class AuditRow(Protocol):
    """What the chain needs from a stored row."""

    id: int
    created_at: datetime
    tag: str
    actor_id: str | None
    data: Mapping[str, Any]
    prev_hash: str
    hash: str


def _canonical(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _utc_naive(moment: datetime) -> datetime:
    """Databases differ in returning aware or naive datetimes; hash the UTC wall time."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def row_hash(
    prev_hash: str, tag: str, actor_id: str | None, created_at: datetime, data: Mapping[str, Any]
) -> str:
    """SHA-256 over the previous hash and this row's canonical content."""
    body = {
        "prev": prev_hash,
        "tag": str(tag),
        "actor": actor_id,
        "at": _utc_naive(created_at).isoformat(timespec="microseconds"),
        "data": data,
    }
    return hashlib.sha256(_canonical(body)).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """Outcome of :func:`verify_chain`. ``problems`` names each broken row."""

    rows: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(rows: Iterable[AuditRow]) -> ChainReport:
    """Recompute the chain over ``rows`` in id order and report every break.

    Detects edited rows (hash mismatch), deleted or inserted rows (prev_hash does not
    point at the row before) and a deleted head of the log (first row not at genesis).
    """
    problems: list[str] = []
    prev = GENESIS
    count = 0
    for row in rows:
        count += 1
        if row.prev_hash != prev:
            problems.append(
                f"row {row.id}: does not follow the previous row (deleted or inserted row)"
            )
        expected = row_hash(row.prev_hash, row.tag, row.actor_id, row.created_at, row.data)
        if expected != row.hash:
            problems.append(f"row {row.id}: content does not match its hash (edited row)")
        prev = row.hash
    return ChainReport(rows=count, problems=tuple(problems))
