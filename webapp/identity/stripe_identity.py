"""Stripe Identity: an ID document plus a matching live selfie, verified by Stripe (R1).

``start`` creates a VerificationSession and sends the person to its ``url``; Stripe sends
them back to our ``return_url``. Decisions are taken from the session as Stripe returns it
(``refresh``), whether a person comes back, the API asks or an
``identity.verification_session.*`` webhook arrives (:func:`on_event`, called by the
signature-verified, de-duplicated webhook in ``webapp.billing.service``). A webhook body
is only a trigger: ``verified_outputs`` (the date of birth) is never in it.

After a final decision the session is redacted once, so Stripe no longer holds the
document and selfie images; each request and Stripe's confirmation are audit events.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import stripe
from flask import current_app, url_for
from sqlalchemy import select

from compliance.audit import EventTag

from ..audit import record_event
from ..consent import binding
from ..errors import DomainError, InvalidInput
from ..extensions import db
from ..models import AuditEvent, IdentityCheck, Subject, User, utcnow
from . import Started, decide, register
from .self_hosted import MAX_BYTES, keep_template, read_image, scan_face

FINAL = ("verified", "rejected")
EVENT_PREFIX = "identity.verification_session."


class ProviderError(DomainError):
    status, code = 502, "provider_error"

    def __init__(self) -> None:
        super().__init__("Stripe Identity did not answer; try again in a minute.")


def _client() -> stripe.StripeClient:
    ext, cfg = current_app.extensions, current_app.config
    if "dhf_stripe_identity" not in ext:
        if not cfg.get("STRIPE_SECRET_KEY"):
            raise InvalidInput(
                "Stripe Identity needs STRIPE_SECRET_KEY; ask the operator.",
                code="provider_unavailable",
            )
        base = cfg.get("STRIPE_API_BASE")
        addresses = {"api": base} if base else None
        ext["dhf_stripe_identity"] = stripe.StripeClient(
            cfg["STRIPE_SECRET_KEY"],
            base_addresses=addresses,  # type: ignore[arg-type]
        )
    return ext["dhf_stripe_identity"]


def age_on(dob: Mapping[str, Any], today: date) -> int:
    born = date(int(dob["year"]), int(dob["month"]), int(dob["day"]))
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def decision(session: Mapping[str, Any], today: date) -> tuple[str, list[str], bool | None]:
    """``(status, reasons, is_adult)`` for a VerificationSession retrieved from Stripe."""
    status = session.get("status")
    if status == "verified":
        dob = (session.get("verified_outputs") or {}).get("dob") or {}
        if not all(isinstance(dob.get(k), int) for k in ("year", "month", "day")):
            return "needs_review", ["dob_missing"], None
        return "verified", [], age_on(dob, today) >= 18
    if status == "canceled":
        return "rejected", ["canceled"], None
    error = session.get("last_error")
    if status == "requires_input" and error:  # without an error: not submitted yet
        return "rejected", [str(error.get("code") or "requires_input")], None
    return "pending", [], None


def _redactions(check: IdentityCheck) -> list[AuditEvent]:
    query = select(AuditEvent).where(
        AuditEvent.tag == str(EventTag.KYC_REDACTED), AuditEvent.actor_id == check.user_id
    )
    return [e for e in db.session.scalars(query) if e.data.get("check") == check.id]


def _record_redaction(check: IdentityCheck, state: str) -> None:
    data = {"check": check.id, "session": check.provider_ref, "state": state}
    record_event(EventTag.KYC_REDACTED, actor_id=check.user_id, data=data)


def _redact_once(check: IdentityCheck) -> None:
    """Ask Stripe to delete the images and personal data of a decided session, once."""
    if _redactions(check):
        return
    try:
        _client().v1.identity.verification_sessions.redact(
            check.provider_ref or "", options={"idempotency_key": f"redact-{check.provider_ref}"}
        )
    except stripe.InvalidRequestError as exc:  # e.g. a session Stripe will not redact
        current_app.logger.warning("redaction of %s refused: %s", check.provider_ref, exc)
        _record_redaction(check, f"refused: {exc.code or 'invalid_request'}")
        return
    except stripe.StripeError:  # not recorded: the next refresh or event tries again
        current_app.logger.exception("Stripe Identity: redacting %s", check.provider_ref)
        return
    _record_redaction(check, "requested")


def _file_contents(file_id: str) -> bytes:
    """A file of Stripe's Files API (``files.stripe.com``), at most MAX_BYTES."""
    cfg = current_app.config
    base = cfg.get("STRIPE_API_BASE") or "https://files.stripe.com"
    url = f"{base}/v1/files/{urllib.parse.quote(file_id)}/contents"
    auth = {"Authorization": f"Bearer {cfg['STRIPE_SECRET_KEY']}"}
    request = urllib.request.Request(url, headers=auth)
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (fixed base)
        data = response.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError("selfie file too large")
    return bytes(data)


def _selfie(check: IdentityCheck, session: Mapping[str, Any]) -> np.ndarray | None:
    """The face template of the verification report's live selfie, kept encrypted (the
    consent checks compare the consent recording and the footage with it)."""
    report = session.get("last_verification_report")
    selfie = ((report if isinstance(report, Mapping) else {}).get("selfie") or {}).get("selfie")
    if not selfie:
        return None
    try:
        rgb, _ = read_image(_file_contents(str(selfie)), "selfie")
    except (OSError, ValueError, DomainError):
        current_app.logger.exception("Stripe Identity: reading the selfie of %s", check.id)
        return None
    scan = scan_face(rgb)
    if scan.count != 1 or scan.template is None:
        return None
    keep_template(check, scan.template)
    return scan.template


def sync(check: IdentityCheck) -> IdentityCheck:
    """Apply the session's current state to ``check`` in the caller's transaction.

    A verified session's selfie is fetched (before the session is redacted) and its face
    template kept; for another person's check it must not be the account holder's face."""
    if check.status not in FINAL:
        try:
            session = _client().v1.identity.verification_sessions.retrieve(
                check.provider_ref or "",
                params={"expand": ["verified_outputs", "last_verification_report"]},
            )
        except stripe.StripeError:
            current_app.logger.exception("Stripe Identity: retrieving %s", check.provider_ref)
            raise ProviderError from None
        status, reasons, adult = decision(session.to_dict(), utcnow().date())
        if status == "verified" and (selfie := _selfie(check, session.to_dict())) is not None:
            scores = dict(check.scores or {})
            if check.subject_id and (holder := binding.holder_reasons(check, selfie, scores)):
                status, reasons = "rejected", holder
            check.scores = scores
        decide(check, status, reasons, adult)
    if check.status in FINAL:
        _redact_once(check)
    return check


def on_event(event_type: str, obj: Mapping[str, Any]) -> str:
    """A signature-verified, first-seen ``identity.verification_session.*`` event."""
    query = select(IdentityCheck).where(
        IdentityCheck.provider == StripeIdentity.name, IdentityCheck.provider_ref == obj.get("id")
    )
    check = db.session.scalar(query)
    if check is None:
        return "ignored: no identity check"
    if event_type == EVENT_PREFIX + "redacted":
        if not any(e.data.get("state") == "redacted" for e in _redactions(check)):
            _record_redaction(check, "redacted")
        return "identity redacted"
    return f"identity {sync(check).status}"


class StripeIdentity:
    name = "stripe_identity"

    def start(self, user: User, subject: Subject | None) -> Started:
        client = _client()
        check = IdentityCheck(
            user_id=user.id, subject_id=subject.id if subject else None, provider=self.name
        )
        db.session.add(check)
        db.session.flush()
        metadata = {"check_id": check.id, "user_id": user.id}
        if subject is not None:
            metadata["subject_id"] = subject.id
        params: dict[str, Any] = {
            "type": "document",
            "options": {
                "document": {"require_matching_selfie": True, "require_live_capture": True}
            },
            "metadata": metadata,
            "return_url": url_for("dashboard.identity_return", check_id=check.id, _external=True),
        }
        try:
            session = client.v1.identity.verification_sessions.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"identity-{check.id}"},
            )
        except stripe.StripeError:
            db.session.rollback()
            current_app.logger.exception("Stripe Identity: creating a session")
            raise ProviderError from None
        check.provider_ref = session.id
        record_event(
            EventTag.KYC_STARTED,
            actor_id=user.id,
            data={
                "check": check.id,
                "provider": self.name,
                "session": session.id,
                "subject": check.subject_id,
            },
        )
        db.session.commit()
        return Started(check, session.url)

    def refresh(self, check: IdentityCheck) -> IdentityCheck:
        sync(check)
        db.session.commit()
        return check


register(StripeIdentity())
