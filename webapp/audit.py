"""Writes and checks the audit log; the chain rules live in compliance.audit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from compliance.audit import GENESIS, ChainReport, EventTag, row_hash, verify_chain

from .extensions import db
from .models import AuditEvent, utcnow


def record_event(
    tag: EventTag, *, actor_id: str | None = None, data: dict[str, Any] | None = None
) -> AuditEvent:
    """Append one event to the chain in the caller's transaction.

    Concurrent writers cannot fork the chain: ``prev_hash`` is unique, so the second of
    two writers racing for the same predecessor fails its commit and must retry.
    """
    last = db.session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    prev = last.hash if last else GENESIS
    now = utcnow()
    payload = dict(data or {})
    event = AuditEvent(
        created_at=now,
        tag=str(tag),
        actor_id=actor_id,
        data=payload,
        prev_hash=prev,
        hash=row_hash(prev, str(tag), actor_id, now, payload),
    )
    db.session.add(event)
    db.session.flush()
    return event


def verify_log() -> ChainReport:
    rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000)
    return verify_chain(rows)
