"""Writes and checks the audit log; the chain rules live in compliance.audit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from compliance.audit import GENESIS, ChainReport, EventTag, row_hash, verify_chain

from .extensions import db
from .models import AuditEvent, utcnow

# the advisory lock (one bigint) that serializes appends to the chain on PostgreSQL
CHAIN_LOCK = 0x6468_665F_6175_6474  # "dhf_audt"


def record_event(
    tag: EventTag, *, actor_id: str | None = None, data: dict[str, Any] | None = None
) -> AuditEvent:
    """Append one event to the chain in the caller's transaction.

    Concurrent writers take turns: a lock is taken here and held to the caller's commit,
    so each writer reads the predecessor the last one committed: on PostgreSQL a
    transaction-level advisory lock, on SQLite the database's write lock (a write that
    changes nothing takes it before the read). ``prev_hash`` is unique besides, so a
    writer that bypassed the lock could not fork the chain.
    """
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    elif dialect == "sqlite":
        db.session.execute(text("UPDATE audit_events SET id = id WHERE 0"))
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
