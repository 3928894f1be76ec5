"""The content registry (R15) and the verification service behind the public API (R16)."""

from __future__ import annotations

import os
import re
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from flask import current_app
from sqlalchemy import select

from compliance import media, stamping
from compliance.audit import EventTag
from compliance.vault import parse_master_keys
from compliance.verification import Budget, Verification, verify, verify_within

from .audit import record_event
from .errors import DomainError, InvalidInput
from .extensions import db
from .models import (
    ConsentRecord,
    ConsentStatus,
    ContentRecord,
    Render,
    RenderStatus,
    Subject,
    SubjectStatus,
)


def compliance_settings() -> stamping.ComplianceSettings:
    cfg = current_app.config
    return stamping.ComplianceSettings(
        signing_dir=Path(cfg["SIGNING_DIR"]),
        watermark_keys=tuple(parse_master_keys(cfg["WATERMARK_KEYS"])),
        producer=cfg["AIGC_PRODUCER"],
        limits=media_limits(),
    )


def media_limits() -> media.MediaLimits:
    """The configured ``DHF_MEDIA_MAX_*`` limits every media reader enforces."""
    cfg = current_app.config
    return media.MediaLimits(
        max_pixels=int(cfg["MEDIA_MAX_PIXELS"]),
        max_seconds=float(cfg["MEDIA_MAX_SECONDS"]),
        max_frames=int(cfg["MEDIA_MAX_FRAMES"]),
        max_decoded_bytes=int(cfg["MEDIA_MAX_DECODED_BYTES"]),
    )


class MediaOverLimit(InvalidInput):
    """422 naming the limit a file is over (``compliance.media.MediaLimitExceeded``)."""

    code = "media_limit"

    @classmethod
    def from_exc(cls, exc: media.MediaLimitExceeded) -> MediaOverLimit:
        return cls(exc.message)


class VerifyBusy(DomainError):
    status, code = 503, "verify_busy"


def register(
    record: stamping.StampRecord,
    *,
    owner_id: str,
    avatar_id: str | None = None,
    subject_id: str | None = None,
    consent_record_id: str | None = None,
    render_id: str | None = None,
) -> ContentRecord:
    """Store the registry row of a stamped file (the caller commits)."""
    row = ContentRecord(
        content_id=record.content_id,
        render_id=render_id,
        owner_id=owner_id,
        avatar_id=avatar_id,
        subject_id=subject_id,
        consent_record_id=consent_record_id,
        produce_id=record.produce_id,
        watermark_id=record.watermark_id,
        manifest_id=record.manifest_id,
        manifest=record.manifest,
    )
    db.session.add(row)
    return row


def lookup(content_id: str | None, watermark_id: str | None) -> ContentRecord | None:
    if content_id:
        row = db.session.get(ContentRecord, content_id)
        if row is not None:
            return row
    if watermark_id:
        return db.session.scalar(
            select(ContentRecord).where(ContentRecord.watermark_id == watermark_id)
        )
    return None


def consent_status(row: ContentRecord) -> str:
    """``active``, ``consent_withdrawn`` or ``unknown`` for the depicted subject."""
    subject = db.session.get(Subject, row.subject_id) if row.subject_id else None
    consent = (
        db.session.get(ConsentRecord, row.consent_record_id) if row.consent_record_id else None
    )
    if (subject and subject.status == SubjectStatus.REVOKED) or (
        consent and consent.status == ConsentStatus.REVOKED
    ):
        return "consent_withdrawn"
    if subject is None and consent is None:
        return "unknown"
    return "active"


def taken_down_at(row: ContentRecord) -> datetime | None:
    """When trust & safety took this content's render down (the registry row stays)."""
    render = db.session.get(Render, row.render_id) if row.render_id else None
    if render is None or render.status != RenderStatus.TAKEN_DOWN:
        return None
    return render.taken_down_at or render.created_at


def _content_json(row: ContentRecord | None) -> dict[str, Any] | None:
    if row is None:
        return None
    from .live.service import rooms_of_render

    removed = taken_down_at(row)
    return {
        "content_id": row.content_id,
        # the public shows that aired it (issue 19); never the avatar id, which would link
        # every file of one person
        "live_rooms": rooms_of_render(row.render_id) if row.render_id else [],
        "created_at": row.created_at.isoformat(),
        "producer": current_app.config["AIGC_PRODUCER"],
        "consent_status": consent_status(row),
        "taken_down": removed is not None,
        "taken_down_at": removed.isoformat() if removed else None,
    }


def verification_json(result: Verification, row: ContentRecord | None) -> dict[str, Any]:
    c2pa, label, mark = result.c2pa, result.aigc, result.watermark
    return {
        "verdict": result.verdict,
        "c2pa": None
        if c2pa is None
        else {
            "state": c2pa.state,
            "signer": c2pa.signer,
            "manifest_id": c2pa.manifest_id,
            "assertions": c2pa.assertions,
            "problems": c2pa.problems,
        },
        "aigc": None
        if label is None
        else {
            "present": True,
            "schema_ok": label.schema_ok,
            "signature_ok": label.signature_ok,
            "fields": label.fields,
        },
        "watermark": {
            "found": mark.found,
            "content_id": row.content_id if row is not None and mark.found else None,
            "watermark_id": mark.watermark_id,
            "confidence": round(mark.confidence, 4),
            "p_value": mark.p_value,
        },
        "content": _content_json(row),
    }


def _slots() -> threading.BoundedSemaphore:
    """One semaphore per app: at most VERIFY_CONCURRENCY verifications run at once."""
    slots = current_app.extensions.get("dhf_verify_slots")
    if slots is None:
        with _SLOTS_LOCK:
            size = int(current_app.config["VERIFY_CONCURRENCY"])
            slots = current_app.extensions.setdefault(
                "dhf_verify_slots", threading.BoundedSemaphore(size)
            )
    return slots


_SLOTS_LOCK = threading.Lock()


def _verify_bounded(path: Path) -> Verification:
    """Public verification within its budget: a bounded pool (VERIFY_CONCURRENCY slots,
    503 ``verify_busy`` after VERIFY_QUEUE_S) of child processes each capped in CPU time,
    wall time and memory (``compliance.verification.verify_within``)."""
    cfg = current_app.config
    slots = _slots()
    if not slots.acquire(timeout=float(cfg["VERIFY_QUEUE_S"])):
        raise VerifyBusy("Every verification slot is busy: try again in a minute.")
    try:
        budget = Budget(float(cfg["VERIFY_BUDGET_S"]), int(cfg["VERIFY_MEMORY_BYTES"]))
        return verify_within(path, compliance_settings(), budget)
    except media.MediaLimitExceeded as exc:
        raise MediaOverLimit.from_exc(exc) from None
    except media.MediaError as exc:
        raise InvalidInput(
            "We could not read this file as audio or video.", code="unreadable"
        ) from exc
    finally:
        slots.release()


def verify_stream(
    stream: BinaryIO, filename: str = "upload", *, bounded: bool = True
) -> dict[str, Any]:
    """Verify an uploaded file and resolve it in the registry; logs the request.

    ``bounded`` (the public API and page) runs it through ``_verify_bounded``; the operator's
    ``dhf verify`` runs it here. Over a media limit or the budget: 422 naming the limit."""
    suffix = Path(filename).suffix[:8]
    suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]+", suffix) else ".bin"
    with tempfile.TemporaryDirectory(prefix="dhf-verify-") as tmp:
        path = Path(tmp) / f"file{suffix}"
        with open(path, "wb") as out:
            while chunk := stream.read(1 << 20):
                out.write(chunk)
        if bounded:
            result = _verify_bounded(path)
        else:
            try:
                result = verify(path, compliance_settings())
            except media.MediaLimitExceeded as exc:
                raise MediaOverLimit.from_exc(exc) from None
    row = lookup(result.content_id, result.watermark.watermark_id)
    body = verification_json(result, row)
    record_event(
        EventTag.VERIFY_REQUEST,
        data={"verdict": result.verdict, "content_id": row.content_id if row else None},
    )
    db.session.commit()
    return body


def verify_path(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return verify_stream(fh, os.fspath(path), bounded=False)
